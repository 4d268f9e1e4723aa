"""A rig: the passive description of a bench and the active side that brings it up.

    model            rig files and their typed model (`load_rig`, `Rig`, `RigDevice`)
    emulated_meters  `bench emulate` child processes, one per emulated meter
    bridge           the one seam between the shim and the hub, and the record of what crossed it
    running          `RunningRig`: links, meters, hub, shim and capture, up and down
    control          the control socket of `bench rig up`

Nothing is imported here, so `bench rig check` and the pytest plugin stay cheap to load.
"""
