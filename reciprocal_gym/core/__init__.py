"""The batched reciprocal state and the sample-adaptation rules."""

from reciprocal_gym.core.adaptation import ADAPTATIONS, LABEL_MODES, pseudo_labels, selectable
from reciprocal_gym.core.state import ReciprocalState

__all__ = ["ADAPTATIONS", "LABEL_MODES", "ReciprocalState", "pseudo_labels", "selectable"]
