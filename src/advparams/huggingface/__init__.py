"""Hugging Face folders: read as models by every command that takes a checkpoint, written
back in the same layout (:mod:`advparams.huggingface.folder`), with the data such models
take (:mod:`advparams.huggingface.data`)."""

from advparams.huggingface.folder import HF_PREFIX, is_hf_folder, load_hf_folder, weight_files, write_hf_folder

__all__ = ["HF_PREFIX", "is_hf_folder", "load_hf_folder", "weight_files", "write_hf_folder"]
