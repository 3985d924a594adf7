"""The Transform step: raw string ids to frequency-ranked integer ids.

Referenced by module path from the pipeline
(``components.preprocessing.preprocessing_fn``), so Transform loads it from
the installed package rather than packaging a module file per run.
"""

import tensorflow as tf
import tensorflow_transform as tft

from components import features


def preprocessing_fn(inputs):
    """Maps user and movie ids to popularity ranks; passes the rating through.

    The vocabularies are sorted by frequency in the train split (Transform
    analyses only that split), so id 0 is the most-rated user or movie. The
    mixed-dimension embedding relies on this ordering: its popularity blocks are
    contiguous id ranges. Ids absent from the train split map to the single
    out-of-vocabulary bucket, index ``vocabulary size``.

    The Evaluator's other slicing features follow from the vocabularies'
    counts and are computed in the exported model (``trainer/slicing.py``);
    the rating value slices on the label itself.
    """
    outputs = {}
    for raw_name in features.RAW_ID_FEATURES:
        outputs[features.INDEX_FEATURE_FOR[raw_name]] = tft.compute_and_apply_vocabulary(
            inputs[raw_name],
            num_oov_buckets=features.NUM_OOV_BUCKETS,
            # Frequencies let the Trainer size tables and cut popularity
            # blocks from data.
            store_frequency=True,
            vocab_filename=features.VOCABULARY_FOR[raw_name],
        )
    outputs[features.LABEL] = tf.cast(inputs[features.RATING], tf.float32)
    return outputs
