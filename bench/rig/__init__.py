"""A rig: the passive description of a bench and the active side that brings it up.

    model            rig files and their typed model (`load_rig`, `Rig`, `RigDevice`, `DeviceLink`)
    lab              the [labgrid] table and holding the rig's lab place
    emulated_meters  `bench emulate` child processes, one per emulated meter
    bridge           the one seam between the shim and the hub (and the S1SP)
    traffic          what crossed that seam, and the time spent waiting on devices
    smets1           the rig's S1SP for SMETS1 devices, wired to the bridge
    running          `RunningRig`: links, meters, hub, shim and capture, up and down
    results          a run's results directory and what it holds
    control          the control socket of `bench rig up`

Nothing is imported here, so `bench rig check` and the pytest plugin stay cheap to load.
See docs/rig.md.
"""
