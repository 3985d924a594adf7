"""What the layers of every technique share: reading ids, the shape they
return, and a fresh initializer per table."""

import keras
from keras import ops


def prepare_ids(inputs, input_dim: int):
    """Cast ids to an integer dtype and drop a trailing axis of size 1."""
    # int32 keeps the digit arithmetic on the fast path; only vocabularies
    # beyond 2**31 ids need int64.
    dtype = "int32" if input_dim < 2**31 else "int64"
    ids = ops.cast(inputs, dtype)
    if len(ids.shape) >= 2 and ids.shape[-1] == 1:
        ids = ops.squeeze(ids, axis=-1)
    return ids


def ids_output_shape(input_shape, output_dim: int) -> tuple:
    shape = tuple(input_shape)
    if len(shape) >= 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape + (output_dim,)


def per_table_initializer(initializer, index: int):
    """A fresh copy of ``initializer`` for table number ``index``.

    Keras 3 random initializers draw the same values on every call of one
    instance, so reusing an instance would give same-shaped tables identical
    starting values (for "mult", a product of a table with itself). Copies of
    an unseeded initializer get fresh seeds; a seeded one is offset by
    ``index`` so runs stay reproducible but tables still differ.
    """
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if isinstance(config.get("seed"), int):
        config = dict(config, seed=config["seed"] + index)
    return initializer.__class__.from_config(config)


def deserialized(config, *keys: str):
    """A layer config with its initializer and regularizer ``keys`` turned
    back from their serialized form."""
    config = dict(config)
    for key in keys:
        module = keras.regularizers if key.endswith("regularizer") else keras.initializers
        if config.get(key) is not None:
            config[key] = module.deserialize(config[key])
    return config
