"""What a strategy ran with, read back from it: per-experience settings (summary.json["experiences"]),
the dry run (`pad-bench run --dry-run`) and parameter accounting (summary.json["params"])."""
from __future__ import annotations

from ..config import per_domain
from ..metrics.lifelong import UNION_LABEL
from .carried import carried_bytes
from .schedules import per_domain_list


class ReportingMixin:
    """`experience_settings`, `plan_experience` and `param_report` are hooks a method extends (call super)."""

    def domain_name(self) -> str:
        return UNION_LABEL if self.sees_union else self.cfg["benchmark"]["domains"][self.exp_index]

    def experience_settings(self) -> dict:
        """The settings the current experience runs with, read from the strategy as set up (after
        the trainable set and the optimizer): summary.json["experiences"] and --dry-run rows."""
        flags = [p.requires_grad for p in self.model.backbone.image_encoder().parameters()]
        blocks = getattr(self.model.backbone, "blocks", None)
        return {
            "domain": self.domain_name(),
            "position": self.exp_index,
            "epochs": self.train_epochs,
            "milestones": list(per_domain_list(self.hp.milestones, self.exp_index)),
            "schedule_step": self.hp.schedule_step,
            "lr": {g.get("name", str(i)): lr for i, (g, lr) in enumerate(zip(self.optimizer.param_groups,
                                                                               self.base_lrs))},
            "batch_p": self.batch_p(),
            "batch_k": self.train_cfg["batch_k"],
            "sampler": self.train_cfg["sampler"],
            "random_erasing": per_domain(self.train_cfg["random_erasing"], self.exp_index),
            "precision": self.precision,
            "kd": self.kd_active,
            "unfreeze": "full" if all(flags) else ("partial" if any(flags) else "none"),
            "trainable_blocks": None if blocks is None else
            [i for i, b in enumerate(blocks) if any(p.requires_grad for p in b.parameters())],
            "trainable_params": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
        }

    def plan_experience(self) -> None:
        """Size and freeze the model for the current experience as training does, without data."""
        self.adapt_model()
        self.configure_trainable()
        self.make_optimizer()

    def plan(self) -> list[dict]:
        """The dry run: every experience set up in training order, its settings; nothing trains.
        The model is left as after the last experience's set-up: build a fresh one to train."""
        self.planning = True
        try:
            rows = []
            for k in range(len(self.num_classes_per_exp)):
                self.start_experience(k)
                self.plan_experience()
                rows.append(self.experience_settings())
            return rows
        finally:
            self.planning = False

    def param_report(self) -> dict:
        """Parameter counts and carried bytes after the experience just trained (summary.json["params"])."""
        params = list(self.model.parameters())
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        carried = carried_bytes(self.carried_owners(), self.model)
        return {
            "experience": self.exp_index,
            "total_params": total,
            "trainable_params": trainable,
            "trainable_ratio": trainable / max(total, 1),
            "carried_bytes": carried,
            "carried_total_bytes": sum(carried.values()),
        }
