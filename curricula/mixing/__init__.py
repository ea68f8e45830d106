"""Domain mixing, shared by every method that samples by domain: exact per-batch counts (``mixer``), resumable
streams (``stream``), weights specs and the weights file (``weights``). The base of online mixers is
``curricula.methods.online``."""

from curricula.mixing.mixer import DomainMixer, MixingError, check_weights
from curricula.mixing.weights import WeightsError, l1_change, read_weights_json, resolve_weights, weights_json

__all__ = ["DomainMixer", "MixingError", "WeightsError", "check_weights", "l1_change", "read_weights_json",
           "resolve_weights", "weights_json"]
