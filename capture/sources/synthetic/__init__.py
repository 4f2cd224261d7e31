"""The procedural synthetic source: bodies (body.py), motion (motion.py), poses (pose.py), micro-gestures
(mg.py) and emotion styles (styles.py), behind the ``synthetic:`` scheme (source.py)."""
