"""`onewindow demo`: the department simulators and the gateway together, with demo data, tokens and ``demo.json``.

Each start-up step is a function in `demokit.demo.steps` (the benchmarks reuse them to prepare their data);
`demokit.demo.runner.run_demo` strings them together and serves the gateway until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

from demokit.demo.steps import (
    DEMO_FILE,
    DemoCitizen,
    DemoFile,
    Scenario,
    choose_scenario,
    create_demo_tokens,
    demo_settings,
    prepare_database,
    simulator_base_port,
    start_simulators,
    sync_certificates,
    write_demo_file,
)

__all__ = [
    "DEMO_FILE",
    "DemoCitizen",
    "DemoFile",
    "Scenario",
    "choose_scenario",
    "create_demo_tokens",
    "demo_settings",
    "prepare_database",
    "simulator_base_port",
    "start_simulators",
    "sync_certificates",
    "write_demo_file",
]
