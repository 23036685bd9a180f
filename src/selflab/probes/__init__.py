"""Probes on hidden states: activations at every layer, true/false statement datasets, linear and
non-linear probes, layer sweeps, adaptive layer selection, token dynamics, cross-dataset
generalization and probe-guided best-of-N generation."""

from selflab.probes.activations import ActivationCache, Activations, ProbeInput, extract
from selflab.probes.datasets import ProbeDataset, Statement, build, entity_split, split_indices
from selflab.probes.metrics import Metric, accuracy_ci, auc, auc_ci
from selflab.probes.models import LogisticProbe, MeanDiffProbe, MLPProbe, make_probe

__all__ = [
    "ActivationCache",
    "Activations",
    "LogisticProbe",
    "MLPProbe",
    "MeanDiffProbe",
    "Metric",
    "ProbeDataset",
    "ProbeInput",
    "Statement",
    "accuracy_ci",
    "auc",
    "auc_ci",
    "build",
    "entity_split",
    "extract",
    "make_probe",
    "split_indices",
]
