"""Networks: encoders (the shared base network) and task decoders. They know nothing about masks."""

from sparseshare.models.crf import CRFDecoder, LinearChainCRF
from sparseshare.models.decoders import DECODERS, LinearDecoder, build_decoder
from sparseshare.models.tagger import CharCNN, MultiTaskTagger, TaggerEncoder, build_tagger, drop_words

__all__ = [
    "DECODERS",
    "CRFDecoder",
    "CharCNN",
    "LinearChainCRF",
    "LinearDecoder",
    "MultiTaskTagger",
    "TaggerEncoder",
    "build_decoder",
    "build_tagger",
    "drop_words",
]
