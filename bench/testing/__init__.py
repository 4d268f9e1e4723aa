"""What a HIL test writer uses: the pytest plugin, the parties and their flows, the images.

    plugin         fixtures, options and the `mp207` marker (loaded through the `pytest11` entry
                   point)
    parties        `DccUser` (a Supplier or an RSA with its keys) and the firmware flows it runs
    images         `ImageFactory` and `SampleImage`: signed GB upgrade images for the rig's meters
    fuzz           the `fuzz_campaign` fixture: a bounded robustness campaign in a HIL suite
    serial_server  ser2net on this machine, for tests of serial-server links
    labgrid_lab    a labgrid coordinator and exporter on this machine, for tests of lab rigs

Nothing is imported here: the plugin loads in every pytest session and must stay cheap.
See docs/rig.md.
"""
