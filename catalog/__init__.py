"""The district's reference data and rules: service items, departments, certificate types, organisation
units, the working-day calendar and the national code standards. Depends on nothing else of ours."""
