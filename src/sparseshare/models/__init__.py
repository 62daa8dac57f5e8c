"""Networks: encoders (the shared base network) and task decoders. They know nothing about masks."""

from sparseshare.models.decoders import LinearDecoder
from sparseshare.models.tagger import CharCNN, MultiTaskTagger, TaggerEncoder

__all__ = ["CharCNN", "LinearDecoder", "MultiTaskTagger", "TaggerEncoder"]
