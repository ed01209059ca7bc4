"""Evidence a window can trust and reuse: trust levels of materials, the applicant's evidence store of verified
copies (一次提交、多次复用), commitments and their checks (告知承诺制, 事后核查), result certificates issued by the
district, and the prefill rate.

It sits between the case (`gateway.cases`) and the domains that file and handle cases: intake and lifecycle call
it; it imports neither.
"""
