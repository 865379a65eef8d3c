"""``segops demo``: the bundled sample workspace (``workspace.yaml``), its data generator
(:mod:`cli.demo.data`) and the scripted story that runs them (:mod:`cli.demo.run`)."""
