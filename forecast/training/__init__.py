"""The parts of a training run; :mod:`forecast.train` composes them (``train()``, the
``torchrun`` entry point).

* :mod:`~forecast.training.schedule`: curriculum, learning rate, seeding, RNG states;
* :mod:`~forecast.training.run_data`: the store as the run reads it, the resumable sampler;
* :mod:`~forecast.training.metrics`: ``metrics.csv`` and TensorBoard;
* :mod:`~forecast.training.trainer`: the loop and the train state of one process.
"""
