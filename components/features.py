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
