"""The model bundle: the only thing training and serving share at run time (stdlib only; signing also
needs ``cryptography``).

- :mod:`service.bundle.graph`     the ONNX graph's input and output names, the parity tolerance
- :mod:`service.bundle.manifest`  :class:`Manifest`, the typed ``manifest.json``
- :mod:`service.bundle.sections`  its sections (golden examples, parity, metrics, training, drift)
- :mod:`service.bundle.record`    the machinery every record shares (JSON in and out, unknown keys kept)
- :mod:`service.bundle.store`     :func:`write_bundle` / :func:`load_bundle` and the store's layout
- :mod:`service.bundle.drift`     the training split's unknown-token ratio and length quantiles
- :mod:`service.bundle.signing`   Ed25519 signatures of manifests (imports ``cryptography`` when used)

Training, the service and the benchmark import all of it from here.
"""

from service.bundle.drift import measure_inputs
from service.bundle.graph import INPUTS, OUTPUTS, PARITY_TOLERANCE
from service.bundle.manifest import (
    MANIFEST_FILE,
    MULTI_LABEL,
    SCHEMA_VERSION,
    SINGLE_LABEL,
    SUPPORTED_SCHEMA_VERSIONS,
    TASKS,
    BundleError,
    DataReport,
    DataSource,
    Distribution,
    GoldenExample,
    InputDrift,
    Manifest,
    Metrics,
    Parity,
    TrainingRecord,
)
from service.bundle.signing import (
    SIGNATURE_FILE,
    load_private_key,
    load_public_key,
    sign_bundle,
    signing,
    verify_signature,
    write_key_pair,
)
from service.bundle.store import (
    DEFAULT_MODEL_STORE,
    LABELS_FILE,
    MAX_VERSION,
    MODEL_FILE,
    NAME_PATTERN,
    STORE_VARIABLE,
    TOKENIZER_FILE,
    Bundle,
    check_name,
    default_store,
    is_valid_name,
    is_valid_version,
    list_models,
    list_versions,
    load_bundle,
    promoted_versions,
    read_manifest,
    record_in_manifest,
    sha256_file,
    verify_checksums,
    write_bundle,
)

__all__ = [
    "DEFAULT_MODEL_STORE",
    "INPUTS",
    "LABELS_FILE",
    "MANIFEST_FILE",
    "MAX_VERSION",
    "MODEL_FILE",
    "NAME_PATTERN",
    "OUTPUTS",
    "PARITY_TOLERANCE",
    "SCHEMA_VERSION",
    "SIGNATURE_FILE",
    "STORE_VARIABLE",
    "MULTI_LABEL",
    "SINGLE_LABEL",
    "SUPPORTED_SCHEMA_VERSIONS",
    "TASKS",
    "TOKENIZER_FILE",
    "Bundle",
    "BundleError",
    "DataReport",
    "DataSource",
    "Distribution",
    "GoldenExample",
    "InputDrift",
    "Manifest",
    "Metrics",
    "Parity",
    "TrainingRecord",
    "check_name",
    "is_valid_name",
    "is_valid_version",
    "load_private_key",
    "load_public_key",
    "sign_bundle",
    "signing",
    "verify_signature",
    "write_key_pair",
    "default_store",
    "list_models",
    "list_versions",
    "load_bundle",
    "measure_inputs",
    "promoted_versions",
    "read_manifest",
    "record_in_manifest",
    "sha256_file",
    "verify_checksums",
    "write_bundle",
]
