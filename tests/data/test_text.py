"""PTB word-level reader: vocabulary, ids, truncated-BPTT batching; the real files when present."""

import os

import numpy as np
import pytest

from freqnoise.data import text

PTB_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "ptb")


def _write_ptb(directory, train, valid, test):
  for name, lines in (("ptb.train.txt", train), ("ptb.valid.txt", valid), ("ptb.test.txt", test)):
    with open(os.path.join(directory, name), "w") as f:
      f.write("".join(f" {line} \n" for line in lines))


def test_vocab_ordered_by_count_then_word(tmp_path):
  words = text.read_words(_tiny(tmp_path))
  assert words[:4] == ["b", "a", "b", "<eos>"]
  vocab = text.build_vocab(words)
  # counts: b 3, <eos> 2, a 2, c 1 -> ties alphabetical ('<' sorts before 'a')
  assert vocab == {"b": 0, "<eos>": 1, "a": 2, "c": 3}


def _tiny(tmp_path):
  _write_ptb(tmp_path, ["b a b", "c a b"], ["a c"], ["b a"])
  return os.path.join(tmp_path, "ptb.train.txt")


def test_bptt_batches_are_contiguous_streams():
  ids = np.arange(23)
  x, y = text.bptt_batches(ids, batch_size=2, seq_len=3)
  # streams: 0..10 and 11..21 (token 22 dropped); (11 - 1) // 3 = 3 batches
  assert x.shape == y.shape == (3, 2, 3)
  np.testing.assert_array_equal(x[0], [[0, 1, 2], [11, 12, 13]])
  np.testing.assert_array_equal(x[2], [[6, 7, 8], [17, 18, 19]])
  np.testing.assert_array_equal(y, x + 1)
  with pytest.raises(ValueError, match="too few"):
    text.bptt_batches(np.arange(5), batch_size=2, seq_len=3)
  with pytest.raises(ValueError, match="positive"):
    text.bptt_batches(ids, batch_size=0, seq_len=3)


def test_load_ptb_rows_read_in_order_are_bptt_batches(tmp_path):
  _tiny(tmp_path)
  splits, vocab = text.load_ptb(str(tmp_path), batch_size=2, seq_len=2, eval_batch_size=1)
  ids = text.words_to_ids(text.read_words(str(tmp_path / "ptb.train.txt")), vocab)
  np.testing.assert_array_equal(ids, [0, 2, 0, 1, 3, 2, 0, 1])
  x, y = text.bptt_batches(ids, 2, 2)
  np.testing.assert_array_equal(splits["train"]["tokens"], x.reshape(-1, 2))
  np.testing.assert_array_equal(splits["train"]["targets"], y.reshape(-1, 2))
  np.testing.assert_array_equal(splits["valid"]["tokens"], [[2, 3]])  # "a c <eos>"
  np.testing.assert_array_equal(splits["valid"]["targets"], [[3, 1]])


def test_load_ptb_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="lacks"):
    text.load_ptb(str(tmp_path), batch_size=1, seq_len=1)
  _write_ptb(tmp_path, ["a b a"], ["a zebra"], ["a"])
  with pytest.raises(ValueError, match="'zebra' at token 1"):
    text.load_ptb(str(tmp_path), batch_size=1, seq_len=1)


def test_non_utf8_file_names_the_file_and_byte_offset(tmp_path):
  """A stray Latin-1 byte used to give a bare UnicodeDecodeError without the file's name."""
  _write_ptb(tmp_path, ["a b a"], ["a b"], ["a"])
  (tmp_path / "ptb.valid.txt").write_bytes(b" a b \n a caf\xe9 \n")
  path = str(tmp_path / "ptb.valid.txt")
  with pytest.raises(ValueError) as e:
    text.load_ptb(str(tmp_path), batch_size=1, seq_len=1)
  assert str(e.value) == (f"{path}: not UTF-8 text: byte 0xe9 at byte offset 12 (line 2) "
                          "invalid continuation byte")
  assert not isinstance(e.value, UnicodeDecodeError)


def test_line_endings_read_as_text_mode_would(tmp_path):
  (tmp_path / "crlf.txt").write_bytes(b"a b\r\nc\rd\n")
  assert text.read_words(str(tmp_path / "crlf.txt")) == ["a", "b", "<eos>", "c", "<eos>", "d",
                                                          "<eos>"]


@pytest.mark.skipif(not os.path.isdir(PTB_DIR), reason="real PTB files not present at ../shared/data/ptb")
def test_real_ptb_sizes():
  splits, vocab = text.load_ptb(PTB_DIR, batch_size=20, seq_len=35)
  assert len(vocab) == 10000 and vocab["the"] == 0 and "<unk>" in vocab and "<eos>" in vocab
  # 929,589 training tokens -> 46,479 per stream -> 1,327 batches of 20 x 35
  assert splits["train"]["tokens"].shape == (1327 * 20, 35)
  # batch 1 continues batch 0: its first inputs are batch 0's last targets
  np.testing.assert_array_equal(splits["train"]["tokens"][20:40, 0], splits["train"]["targets"][0:20, -1])
  assert splits["test"]["tokens"].shape[0] == (82430 // 20 - 1) // 35 * 20
