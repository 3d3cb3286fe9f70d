"""Scoring a whole corpus outside HTTP: ``lstm-service score`` on every core, and the same scorer inside
Ray Data (:mod:`service.scoring.ray_data`) and Spark (:mod:`service.scoring.spark`). See docs/scoring.md."""
