"""Input pipelines: TFRecord (tf.train.Example) writing and reading."""
