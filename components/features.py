"""Names shared by the Transform graph, the Trainer and the Evaluator.

One place so the raw schema, the transformed features and the serving
signature cannot drift apart.
"""

# Raw features, as in schema/schema.pbtxt.
USER_ID = "user_id"
MOVIE_ID = "movie_id"
RATING = "rating"
RAW_ID_FEATURES = (USER_ID, MOVIE_ID)

# Transformed features: integer ids ranked by training-set frequency.
USER_INDEX = "user_index"
MOVIE_INDEX = "movie_index"
LABEL = RATING

# Vocabulary files written by Transform ("count token" per line, most
# frequent first). The Trainer derives table sizes and popularity blocks from
# them, so nothing about the data is typed in by hand.
USER_VOCABULARY = "user_id_vocabulary"
MOVIE_VOCABULARY = "movie_id_vocabulary"

# Ids never seen in the train split share one out-of-vocabulary bucket,
# whose index is the vocabulary size.
NUM_OOV_BUCKETS = 1

INDEX_FEATURE_FOR = {USER_ID: USER_INDEX, MOVIE_ID: MOVIE_INDEX}
VOCABULARY_FOR = {USER_ID: USER_VOCABULARY, MOVIE_ID: MOVIE_VOCABULARY}

# The Keras model's inputs.
MODEL_INPUT_FEATURES = (USER_INDEX, MOVIE_INDEX)

# Slicing features for the Evaluator, computed by the SavedModel's
# ``transform_features`` signature (trainer/slicing.py), where TFMA reads
# them: the block and the quartile as integers, emitted as their names below
# (strings), so TFMA's slice keys read e.g. ("movie_popularity", "head").
# The names differ from the integer features' of earlier versions
# ("movie_popularity_block", "user_activity_quartile"): TFMA merges the
# candidate's and the baseline's slice values and cannot sort ints among
# strings, so a model blessed before the change must not share a name.
# The names are in slice order: the report orders slices by their index here.
# Movie popularity block: head, torso, tail; each holds about a third of the
# train ratings. Movies unseen in train are in the tail.
MOVIE_POPULARITY_BLOCK = "movie_popularity"
MOVIE_POPULARITY_BLOCK_NAMES = ("head", "torso", "tail")
# User activity quartile by ratings per user: the most active quarter of the
# users first, the least active quarter (users unseen in train included) last.
USER_ACTIVITY_QUARTILE = "user_activity"
USER_ACTIVITY_QUARTILE_NAMES = (
    "most active 25%",
    "second 25%",
    "third 25%",
    "least active 25%",
)
# The rating value slices on the label itself.
SLICING_FEATURES = (MOVIE_POPULARITY_BLOCK, USER_ACTIVITY_QUARTILE, LABEL)
