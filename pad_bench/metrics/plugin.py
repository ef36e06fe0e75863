"""Retrieval metrics inside the Avalanche loop: collect eval features, score each experience."""
from __future__ import annotations

import torch
from avalanche.evaluation.metric_definitions import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from avalanche.evaluation.metric_utils import get_metric_name

from ..errors import UserError
from .diagnostics import Diagnostics
from .retrieval import evaluate_retrieval


class RetrievalMetric(PluginMetric):
    """mAP, mINP and CMC per eval experience (query/gallery split by the is_query flag).

    Results of every scored experience are appended to `results` as dicts
    {stream, experience, mAP, mINP, R1, R5, R10} in percent; the caller drains them. With `diagnostics`,
    each experience's query features also go to it (feature drift and routing, in the same pass).
    """

    def __init__(self, max_rank: int = 50, diagnostics: Diagnostics | None = None):
        super().__init__()
        self.max_rank = max_rank
        self.diagnostics = diagnostics
        self.results: list[dict] = []
        self.reset()

    def reset(self) -> None:
        self._feats, self._pids, self._camids, self._isq = [], [], [], []

    def result(self):
        return self.results[-1] if self.results else None

    def before_eval_exp(self, strategy):
        self.reset()
        if self.diagnostics is not None:
            self.diagnostics.start_experience(strategy)

    def after_eval_iteration(self, strategy):
        out = strategy.mb_output
        emb = out["embedding"] if isinstance(out, dict) else out
        self._feats.append(emb.detach().float())
        self._pids.append(strategy.mb_y)
        self._camids.append(strategy.mb_camid)
        self._isq.append(strategy.mb_is_query.bool())

    def after_eval_exp(self, strategy):
        feats, pids = torch.cat(self._feats), torch.cat(self._pids)
        camids, isq = torch.cat(self._camids), torch.cat(self._isq)
        if self.diagnostics is not None:
            self.diagnostics.end_experience(strategy, feats[isq])
        try:
            r = evaluate_retrieval(feats[isq], feats[~isq], pids[isq], pids[~isq], camids[isq], camids[~isq],
                                   max_rank=self.max_rank)
        except ValueError as e:  # bad data, e.g. no query has a cross-camera match
            exp = strategy.experience
            raise UserError(f"cannot evaluate {exp.origin_stream.name} experience {exp.current_experience}: "
                            f"{e}") from None
        cmc = r["cmc"]
        row = {
            "stream": strategy.experience.origin_stream.name,
            "experience": strategy.experience.current_experience,
            "mAP": 100 * r["mAP"], "mINP": 100 * r["mINP"],
            "R1": 100 * float(cmc[0]), "R5": 100 * float(cmc[min(4, len(cmc) - 1)]),
            "R10": 100 * float(cmc[min(9, len(cmc) - 1)]),
        }
        self.results.append(row)
        self.reset()
        x = strategy.clock.train_iterations
        return [MetricValue(self, get_metric_name(name, strategy, add_experience=True, add_task=False), row[name], x)
                for name in ("mAP", "R1")]

    def __str__(self) -> str:
        return "Retrieval"
