"""Development and demonstration tooling: the simulated department systems (`demokit.simulators`) and the demo
runner (`demokit.demo`). Production code never imports it, except the ``onewindow demo`` and ``onewindow simulate``
commands, inside the commands themselves."""
