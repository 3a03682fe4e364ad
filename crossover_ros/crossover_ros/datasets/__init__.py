"""Readers of scans on disk: the generated layout (``scan``), ScanNet (``scannet``) and 3RScan
(``rscan``), each into the same :class:`~crossover_ros.datasets.scan.Scan` surface."""
