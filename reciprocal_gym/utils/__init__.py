"""Utilities: the vector-env checker."""

from reciprocal_gym.utils.vector_checker import VectorEnvCheckError, check_vector_env

__all__ = ["VectorEnvCheckError", "check_vector_env"]
