"""tapegrad's trained CNN, exported as safetensors, gives the same logits in
PyTorch (issue 16, the reverse of tests/test_torch_cnn.c).

Usage: torch_cnn_reverse.py TEST_TORCH_CNN_EXE FIXTURE_DIR

Runs `TEST_TORCH_CNN_EXE FIXTURE_DIR --export TMP`: the C test imports the
fixture's PyTorch model, trains it 5 Adam steps in tapegrad (so that its
weights and batch-norm running statistics are tapegrad's own), writes
TMP/tg.safetensors and its eval-mode float32 logits on the fixture's 256
images. This script reads the file with json and struct, loads it into
benches/torch_cnn.py's --bn nn.Sequential with load_state_dict(strict=True)
and compares torch's float32 eval logits: max |delta| <= 1e-5 (the bound of
the forward direction, justified in test_torch_cnn.c). Without torch
(CI), it checks that the export ran and exits 77 (meson: skipped)."""

import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benches"))

from torch_common import read_idx, read_safetensors  # noqa: E402


def main():
    exe, fixture = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([exe, fixture, "--export", tmp], capture_output=True, text=True)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        if r.returncode != 0:
            print("FAIL: the C side failed")
            return 1
        try:
            import torch
        except ImportError:
            print("skipped: no torch here (the export itself ran)")
            return 77
        from torch_cnn import make_model

        torch.set_num_threads(1)
        model = make_model(torch, True)
        model.load_state_dict(read_safetensors(torch, os.path.join(tmp, "tg.safetensors")),
                              strict=True)
        model.eval()
        raw, (n, h, w) = read_idx(os.path.join(fixture, "t256-images-idx3-ubyte.gz"))
        x = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(n, 1, h, w)
        with torch.no_grad():
            mine = model(x.to(torch.float32) / 255.0)
        with open(os.path.join(tmp, "tg_logits_f32.bin"), "rb") as f:
            raw = f.read()
        theirs = torch.tensor(struct.unpack("<%df" % (len(raw) // 4), raw)).reshape(n, 10)
        d = (mine - theirs).abs().max().item()
        same = (mine.argmax(1) == theirs.argmax(1)).all().item()
        print(f"reverse: max |torch - tapegrad logit| = {d:.3g} over {n} images; "
              f"same classes: {same}")
        ok = d <= 1e-5 and same
        print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
