"""
Apache Airflow provider for Alibaba Cloud Wan video generation: text-, image-, keyframe- and reference-to-video
(DashScope / Model Studio).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
