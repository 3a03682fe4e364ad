"""The package's exceptions: one base class, so the CLI turns any of them into a one-line error."""


class CrossoverError(Exception):
    """Base class of every error this package raises on bad input or state."""


class DataError(CrossoverError):
    """A scan, building or frame on disk is missing, malformed or inconsistent."""


class ConversionError(CrossoverError):
    """A ROS message cannot be converted to arrays (bad encoding, size or step)."""


class BagError(CrossoverError):
    """A rosbag2 cannot be written or read."""


class MapDatabaseError(CrossoverError):
    """The map database is missing, corrupt, of another schema or made by another model."""


class MapNotFoundError(MapDatabaseError):
    """The map database asked for does not exist (yet)."""


class ModelError(CrossoverError):
    """A model or checkpoint cannot be loaded or does not match what is asked of it."""


class RuntimeBackendError(CrossoverError):
    """An inference backend (ONNX Runtime, TensorRT) is missing, or cannot export, build or run."""


class ConfigError(CrossoverError):
    """A setting or parameter file names an unknown setting or a value outside its range."""


class QueryError(CrossoverError):
    """A text query cannot be answered as asked (empty text, k < 1, a building not mapped)."""
