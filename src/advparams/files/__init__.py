"""Files people share: bounded reading (:mod:`advparams.files.reading`) and safe, atomic
writing (:mod:`advparams.files.writing`). Every reader and writer of the toolkit goes
through these two modules; their limits are listed in ``docs/formats.md``."""

from advparams.files.pairs import install_folder_with_key, recover_interrupted_pair
from advparams.files.reading import (
    LIMITS,
    MAX_JSON_DEPTH,
    MAX_TREE_NODES,
    check_regular,
    check_tree,
    is_safetensors_format,
    normalisation_field,
    open_safetensors,
    parse_json,
    parse_yaml,
    read_file,
    read_text_lines,
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
    "MAX_TREE_NODES",
    "atomic_directory",
    "atomic_write_bytes",
    "boolean",
    "check_output",
    "check_regular",
    "normalisation_field",
    "check_tree",
    "install_folder_with_key",
    "is_safetensors_format",
    "integer",
    "number",
    "parse_json",
    "parse_yaml",
    "read_file",
    "read_marker",
    "read_text_lines",
    "recover_interrupted_pair",
    "resolve",
    "open_safetensors",
    "safetensors_metadata",
    "staging_folder",
    "string",
    "write_marker",
]
