"""Files people share: bounded reading (:mod:`advparams.files.reading`, and
:mod:`advparams.files.tensors` for safetensors files) and safe, atomic writing
(:mod:`advparams.files.writing`); one format for every secret file the toolkit writes
(:mod:`advparams.files.formats`). Every reader and writer of the toolkit goes through
these modules; their limits are listed in ``docs/formats.md``."""

from advparams.files.formats import SecretFormat, tagged_digest
from advparams.files.pairs import install_folder_with_key, is_paired_key, recover_interrupted_pair
from advparams.files.reading import (
    LIMITS,
    MAX_JSON_DEPTH,
    MAX_TREE_NODES,
    check_regular,
    check_tree,
    least_values,
    normalisation_field,
    parse_json,
    parse_yaml,
    read_file,
    read_text_lines,
    register_limit,
)
from advparams.files.tensors import (
    MAX_SAFETENSORS_HEADER,
    MAX_TENSOR_DIMS,
    TensorSpec,
    is_safetensors_format,
    open_safetensors,
    safetensors_header,
    safetensors_metadata,
)
from advparams.files.values import boolean, integer, number, string
from advparams.files.writing import (
    MARKER,
    atomic_directory,
    atomic_write_bytes,
    check_output,
    read_marker,
    resolve,
    staging_folder,
    write_marker,
)

__all__ = [
    "LIMITS",
    "MARKER",
    "MAX_JSON_DEPTH",
    "MAX_SAFETENSORS_HEADER",
    "MAX_TENSOR_DIMS",
    "MAX_TREE_NODES",
    "SecretFormat",
    "TensorSpec",
    "atomic_directory",
    "atomic_write_bytes",
    "boolean",
    "check_output",
    "check_regular",
    "normalisation_field",
    "check_tree",
    "install_folder_with_key",
    "is_paired_key",
    "is_safetensors_format",
    "integer",
    "least_values",
    "number",
    "parse_json",
    "parse_yaml",
    "read_file",
    "read_marker",
    "read_text_lines",
    "register_limit",
    "recover_interrupted_pair",
    "resolve",
    "open_safetensors",
    "safetensors_header",
    "safetensors_metadata",
    "staging_folder",
    "string",
    "tagged_digest",
    "write_marker",
]
