"""Word-level language modelling on Penn Treebank (Mikolov's split: ptb.{train,valid,test}.txt).

Conventions follow Mikolov et al. (2010) and the TensorFlow PTB reader (Zaremba et al., 2014):
  * every line ends with an `<eos>` token (newline -> `<eos>`), words are split on whitespace;
  * the vocabulary is built from the training file only, ids sorted by (descending count, word),
    so the most frequent word has id 0; valid/test words outside it are an error (the files already
    map rare words to `<unk>`);
  * truncated BPTT: the token stream is cut into `batch_size` contiguous streams; batch k holds
    tokens [k*T, (k+1)*T) of every stream and the targets are the same tokens shifted by one.

Splits are returned as `{'tokens': int32 [N, T], 'targets': int32 [N, T]}` with rows ordered so that
reading them in order, `batch_size` rows at a time, gives exactly the BPTT batches (row b of batch k
continues row b of batch k-1).
"""

from __future__ import annotations

import collections
import os

import numpy as np

EOS = "<eos>"
PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}


def read_words(path: str) -> list[str]:
  """The words of a text file with `<eos>` at the end of every line."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"text file not found: {path}")
  with open(path, "rb") as f:
    data = f.read()
  try:  # decoded whole, so that the error's position is the file's byte offset
    content = data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise ValueError(f"{path}: not UTF-8 text: byte 0x{data[e.start]:02x} at byte offset {e.start} "
                     f"(line {line}) {e.reason}") from None
  # universal newlines, as text mode would read them
  content = content.replace("\r\n", "\n").replace("\r", "\n")
  return content.replace("\n", f" {EOS} ").split()


def build_vocab(words: list[str]) -> dict[str, int]:
  """Word -> id, most frequent first, ties broken alphabetically."""
  if not words:
    raise ValueError("cannot build a vocabulary from an empty word list")
  counts = collections.Counter(words)
  ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
  return {word: i for i, (word, _) in enumerate(ordered)}


def words_to_ids(words: list[str], vocab: dict[str, int], source: str = "text") -> np.ndarray:
  """int32 [len(words)] ids; raises ValueError naming the first unknown word and its position."""
  ids = np.empty(len(words), np.int32)
  for i, word in enumerate(words):
    try:
      ids[i] = vocab[word]
    except KeyError:
      raise ValueError(f"{source}: word {word!r} at token {i} is not in the vocabulary "
                       f"({len(vocab)} words, built from the training file)") from None
  return ids


def bptt_batches(ids: np.ndarray, batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
  """Cuts a token stream into truncated-BPTT batches.

  Args:
    ids: int [L] token stream.
    batch_size: number of contiguous streams B.
    seq_len: BPTT length T.

  Returns:
    (inputs, targets), each int32 [K, B, T] with K = (L // B - 1) // T and
    targets[k, b, t] = the token after inputs[k, b, t] in stream b.
  """
  ids = np.asarray(ids)
  if ids.ndim != 1:
    raise ValueError(f"ids must be a 1-D token stream, got shape {ids.shape}")
  if batch_size <= 0 or seq_len <= 0:
    raise ValueError(f"batch_size and seq_len must be positive, got {batch_size}, {seq_len}")
  stream_len = len(ids) // batch_size
  num_batches = (stream_len - 1) // seq_len
  if num_batches < 1:
    raise ValueError(f"{len(ids)} tokens are too few for one batch of {batch_size} x {seq_len} "
                     "(+1 target token per stream)")
  streams = ids[:batch_size * stream_len].reshape(batch_size, stream_len).astype(np.int32)
  used = num_batches * seq_len
  inputs = streams[:, :used].reshape(batch_size, num_batches, seq_len).transpose(1, 0, 2)
  targets = streams[:, 1:used + 1].reshape(batch_size, num_batches, seq_len).transpose(1, 0, 2)
  return np.ascontiguousarray(inputs), np.ascontiguousarray(targets)


def load_ptb(directory: str, *, batch_size: int, seq_len: int,
             eval_batch_size: int | None = None) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
  """Reads PTB from `directory` and cuts every split into BPTT rows.

  Args:
    directory: folder holding ptb.train.txt, ptb.valid.txt and ptb.test.txt.
    batch_size: streams per training batch.
    seq_len: BPTT length (tokens per row).
    eval_batch_size: streams per valid/test batch (default `batch_size`).

  Returns:
    (splits, vocab): splits maps 'train'/'valid'/'test' to {'tokens', 'targets'} int32 [N, T]
    (N = K * batch size, rows ordered as described in the module docstring).
  """
  missing = [name for name in PTB_FILES.values() if not os.path.isfile(os.path.join(directory, name))]
  if missing:
    raise FileNotFoundError(f"PTB directory {directory!r} lacks {', '.join(missing)}")
  train_words = read_words(os.path.join(directory, PTB_FILES["train"]))
  vocab = build_vocab(train_words)
  splits = {}
  for split, name in PTB_FILES.items():
    path = os.path.join(directory, name)
    words = train_words if split == "train" else read_words(path)
    ids = words_to_ids(words, vocab, source=path)
    b = batch_size if split == "train" else (eval_batch_size or batch_size)
    inputs, targets = bptt_batches(ids, b, seq_len)
    splits[split] = {"tokens": inputs.reshape(-1, seq_len), "targets": targets.reshape(-1, seq_len)}
  return splits, vocab
