"""Rooms and objects of a map found by words: :class:`~crossover_ros.query.text.TextQuery`."""
