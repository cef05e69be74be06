"""The artifact store: where every run's inputs and outputs live (MinIO/S3, or a local dir in tests).

Layout, manifests and promotion pointers are defined here so that workers (which write) and the
operator (which checks) agree on one shape.
"""

from synthloop.artifacts.store import ArtifactStore, ObjectInfo, open_store

__all__ = ["ArtifactStore", "ObjectInfo", "open_store"]
