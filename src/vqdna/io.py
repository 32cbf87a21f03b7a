"""Files, safely: the ground floor every other module reads and writes through.

* :func:`read_json` / :func:`write_json_atomic`: a damaged JSON file is a :class:`FileFormatError`
  (a ``ValueError``) naming the file; writes go through a temporary file and ``os.replace``, so a
  reader never sees half a file.
* :func:`file_sha256`, :func:`weights_sha256`: a file's hash; a model or tokenizer folder's identity.
* :func:`save_safetensors`: weights written atomically with the mode of a plain ``open()`` (644
  under the usual umask; safetensors alone writes 600); :func:`share_like_open` for other writers.
* :func:`check_safetensors` / :func:`load_safetensors`: a truncated or garbage ``.safetensors``
  file is a :class:`FileFormatError` naming it, found from the header and the file size before
  any tensor is read; :func:`check_tensors`: every tensor a model needs is there with its shape. :func:`check_model_folder` checks a model or tokenizer folder that way and
  refuses a pickle checkpoint (``pytorch_model.bin``), which is never loaded.
* :func:`staged`: a result folder written aside and moved into place only when complete.
* :func:`check_writable`: an output folder (or an output file's folder) can be written, checked
  before a command starts its work.
* :class:`OutputLock`: one writer per output folder. ``<folder>/.vqdna.lock`` holds the holder's
  pid, host, command and start time (JSON) while an advisory ``flock`` is held on it; a second
  writer gets a :class:`LockError` naming the holder. A lock file whose ``flock`` nobody holds
  (its run was killed) is stale and is taken over with a message. A process whose parent (or
  any ancestor) holds the lock, e.g. a ``vqdna benchmark --jobs N`` shard, writes under its
  parent's lock; so does any process started with ``VQDNA_LOCK_HELD=<folder>`` in its
  environment, which the holder sets for its children.

This module imports nothing else of vqdna.
"""
from __future__ import annotations

import datetime
import hashlib
from contextlib import contextmanager
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
from pathlib import Path

__all__ = ["FileFormatError", "LockError", "OutputLock", "atomic_file", "check_model_folder", "check_safetensors",
           "check_tensors", "check_writable", "file_sha256", "load_safetensors", "model_shapes", "read_json",
           "save_safetensors", "share_like_open", "staged", "weights_sha256", "write_json_atomic"]

LOCK_NAME = ".vqdna.lock"
HELD_ENV = "VQDNA_LOCK_HELD"  # os.pathsep-separated folders whose lock an ancestor process holds


class FileFormatError(ValueError):
    """A file we read is damaged, truncated or of the wrong kind; the message names it."""


class LockError(ValueError):
    """Another process writes into the output folder."""


# ---------------------------------------------------------------- JSON and hashes


class MissingFieldError(FileFormatError, KeyError):
    """A field that a JSON file we read should hold is absent (still a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class JsonObject(dict):
    """A JSON object read from a file: a missing field raises :class:`MissingFieldError`
    naming the file and the field (``.get`` and ``in`` behave as for any dict)."""

    source = "<json>"

    def __missing__(self, key):
        raise MissingFieldError(f"{self.source}: no field {key!r}; the file is damaged, "
                                f"hand-edited or written by another program")


def read_json(path: str | os.PathLike, *, top: type = dict):
    """The JSON value in ``path`` (a :class:`JsonObject`; ``top=object`` allows any value).
    A damaged file, or one whose top level is not ``top``, raises :class:`FileFormatError`
    naming it; so does reading a field the file lacks."""
    path = Path(path)

    def hook(pairs):
        obj = JsonObject(pairs)
        obj.source = str(path)
        return obj

    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f, object_pairs_hook=hook)
    except json.JSONDecodeError as e:
        what = "empty file" if e.pos == 0 and not e.doc.strip() else f"{e.msg}: line {e.lineno} column {e.colno}"
        raise FileFormatError(f"{path}: not valid JSON ({what}); the file is damaged or truncated") from None
    except UnicodeDecodeError as e:
        raise FileFormatError(f"{path}: not valid JSON (binary data at byte {e.start}); "
                              f"the file is damaged or not a JSON file") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path}: a folder, expected a JSON file") from None
    if not isinstance(value, top):
        raise FileFormatError(f"{path}: a JSON {type(value).__name__} where a JSON object was expected; "
                              f"the file is damaged or not the file this command reads")
    return value


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **kwargs):
    """Open a temporary file beside ``path`` for writing; on success it is fsynced and renamed
    onto ``path`` (``os.replace``), on any error removed: readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def staged(out, last: str = "config.json"):
    """A folder ``out/.staged.tmp`` to write a result into; when the block ends without an error its
    entries replace ``out``'s of the same name, ``last`` after the others (``out``'s old ``last``
    goes first, so a half-replaced folder is no model folder), and on an error it is removed: a
    failed command leaves no file that a later command would take for its result."""
    out = Path(out)
    stage = out / ".staged.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
        (out / last).unlink(missing_ok=True)
        for f in sorted(stage.iterdir(), key=lambda f: f.name == last):
            dst = out / f.name
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            os.replace(f, dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    """The process's umask (read from /proc where it can be, so that it is never changed, even briefly)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_like_open(path: str | os.PathLike) -> None:
    """Give ``path`` the mode a plain ``open()`` would (0o666 less the umask: 644 under the usual
    022), for files that writers create private: ``safetensors`` and ``tempfile.mkstemp`` give 600,
    which a group sharing the folder cannot read."""
    os.chmod(path, 0o666 & ~_umask())


def save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """``safetensors.torch.save_file`` through a temporary file and ``os.replace`` (never half a
    file), with the mode of a plain ``open()`` (:func:`share_like_open`)."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(tensors, tmp, metadata=metadata)
        share_like_open(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``."""
    with atomic_file(path) as f:
        json.dump(obj, f, indent=2)


def file_sha256(path, block: int = 1 << 20) -> str:
    """The sha256 (hex) of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256(folder: str | os.PathLike) -> str:
    """A model or tokenizer folder's identity: the sha256 of its ``model.safetensors``; without
    weights (a hand-crafted tokenizer), of its ``config.json``, and, when the config names a
    ``tokenizer_file`` (BPE's merges and vocabulary, ``bpe.json``), the sha256 of the two files'
    hashes: two BPE vocabularies of one size differ there, not in config.json. Code manifests and
    model configs record it for the tokenizer they were made with
    (``vqdna.lm.artifacts.tokenizer_sha256``)."""
    folder = Path(folder)
    weights = folder / "model.safetensors"
    if weights.exists():
        return file_sha256(weights)
    config = folder / "config.json"
    named = read_json(config).get("tokenizer_file") if config.exists() else None
    if not named:
        return file_sha256(config)
    if not isinstance(named, str):
        raise FileFormatError(f"{config}: tokenizer_file is {named!r}, not a file name")
    file = folder / Path(named).name  # the file beside config.json, whatever path the field holds
    if not file.exists():
        raise FileNotFoundError(f"{folder}: {config.name} names tokenizer_file {named!r}, which is missing")
    return hashlib.sha256(bytes.fromhex(file_sha256(config)) + bytes.fromhex(file_sha256(file))).hexdigest()


# ---------------------------------------------------------------- safetensors

_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def check_safetensors(path: str | os.PathLike) -> dict:
    """The tensor entries of a ``.safetensors`` file's header, after checking that the header is
    valid JSON and that the file holds every byte it describes (a truncated or garbage file raises
    :class:`FileFormatError` naming it). Reads only the header."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size

    def bad(why: str):
        return FileFormatError(f"{path}: not a valid safetensors file ({why}); the file is damaged or truncated")

    if size < 8:
        raise bad(f"{size} bytes, shorter than the 8-byte header length")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > _MAX_HEADER or 8 + n > size:
            raise bad(f"its first 8 bytes announce a header of {n:,} bytes; the file has {size:,}")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("its header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    end = 0
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = info["data_offsets"]
            end = max(end, int(stop))
            if int(begin) > int(stop):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor {name!r} has no valid data offsets") from None
        tensors[name] = info
    if 8 + n + end != size:
        raise bad(f"{size:,} bytes, its header describes {8 + n + end:,}")
    return tensors


def model_shapes(make, described_by: str | os.PathLike) -> dict:
    """name -> shape of every tensor of the model ``make()`` builds from the config file
    ``described_by``, built on torch's meta device (no memory, no time). A config the model
    cannot be built from (a damaged or hand-edited file: a string for a size, a negative size)
    is a :class:`FileFormatError` naming the file."""
    import torch

    try:
        with torch.device("meta"):
            model = make()
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RuntimeError, ArithmeticError) as e:
        raise FileFormatError(f"{described_by}: describes no model that can be built ({type(e).__name__}: {e}); "
                              f"the file is damaged or hand-edited") from None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_tensors(path: str | os.PathLike, expected: dict, *, described_by: str | os.PathLike) -> None:
    """Check from its header that the safetensors file ``path`` holds exactly the tensors
    ``expected`` (name -> shape) that the config ``described_by`` makes a model of; else a
    :class:`FileFormatError` naming both files. A loader that skipped this would fail with a raw
    RuntimeError, or (transformers' ``from_pretrained``) initialise a missing tensor at random and
    present an untrained model as trained."""
    header = check_safetensors(path)
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    wrong = [k for k in expected if k in header and header[k].get("shape") != list(expected[k])]
    if not (missing or unexpected or wrong):
        return

    def few(names):
        return ", ".join(repr(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    problems = ([f"no tensor {few(missing)}"] if missing else []) + \
        ([f"unexpected tensor {few(unexpected)}"] if unexpected else []) + \
        [f"tensor {wrong[0]!r} has shape {header[wrong[0]].get('shape')}, expected {list(expected[wrong[0]])}"
         if wrong else ""]
    raise FileFormatError(f"{path}: {'; '.join(p for p in problems if p)} (the model {described_by} describes); "
                          f"the file is damaged or hand-edited, or the two files do not belong together")


def load_safetensors(path: str | os.PathLike, device: str = "cpu") -> dict:
    """``safetensors.torch.load_file`` with a checked file: errors name it (no raw SafetensorError)."""
    from safetensors.torch import load_file

    check_safetensors(path)
    try:
        return load_file(str(path), device=device)
    except Exception as e:  # noqa: BLE001 - safetensors' errors name no file
        raise FileFormatError(f"{path}: not a valid safetensors file ({e})") from None


PICKLE_WEIGHTS = ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt", "tf_model.h5", "flax_model.msgpack")


def check_model_folder(folder: str | os.PathLike, *, weights: bool = True) -> dict:
    """Check a model or tokenizer folder before it is loaded: ``config.json`` must be valid JSON
    (returned) and, when ``weights``, every ``*.safetensors`` beside it intact. A folder whose
    weights are only a pickle checkpoint (``pytorch_model.bin``, ...) is refused by name: vqdna
    loads safetensors only (a pickle can run code when it is loaded). Also checks the
    ``tokenizer/`` copy inside a model folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        if (folder / "checkpoints").is_dir():
            raise FileNotFoundError(f"{folder}: unfinished (checkpoints/ but no config.json): its training did not "
                                    f"finish; rerun the command that writes it with --resume")
        raise FileNotFoundError(f"{folder}: not a vqdna model or tokenizer folder (no config.json)")
    cfg = read_json(cfg_path)
    if not isinstance(cfg, dict):
        raise FileFormatError(f"{cfg_path}: expected a JSON object, found {type(cfg).__name__}")
    st = sorted(folder.glob("*.safetensors"))
    if weights and not st:
        pickles = [folder / p for p in PICKLE_WEIGHTS if (folder / p).exists()]
        if pickles:
            raise FileFormatError(f"{pickles[0]}: refusing to load a pickle checkpoint (it can run code when "
                                  f"loaded); vqdna loads model.safetensors only: convert it with "
                                  f"safetensors.torch.save_file, or use a folder written by vqdna")
    for f in st:
        check_safetensors(f)
    if (folder / "tokenizer" / "config.json").exists():
        check_model_folder(folder / "tokenizer", weights=False)
    return cfg


# ---------------------------------------------------------------- output folders


def check_writable(path: str | os.PathLike, *, file: bool = False) -> Path:
    """Raise ``PermissionError`` (naming the path) unless ``path`` -- a folder, or with ``file`` an
    output file's folder -- can be written: created if missing (the first missing ancestor must be
    writable; nothing is created here), written into if present. Checked by writing a probe file,
    so read-only mounts and ACLs count, not only mode bits."""
    path = Path(path)
    if file and path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give an output file name")
    if file and path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{path}: output file is not writable")
    folder = path.parent if file else path
    probe = folder
    while not probe.exists():
        if probe.is_symlink():  # a dangling link
            raise NotADirectoryError(f"{probe}: a broken symbolic link on the output path {path}")
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(f"{probe}: not a folder, so the output {'file' if file else 'folder'} "
                                 f"{path} cannot be written")
    try:
        fd, name = tempfile.mkstemp(prefix=".vqdna-write-test-", dir=probe)
    except OSError as e:
        where = "output folder" if probe == folder else f"folder that would hold the output {path}"
        raise PermissionError(f"{probe}: {where} is not writable ({e.strerror})") from None
    os.close(fd)
    os.unlink(name)
    return path


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _ancestors() -> set[int]:
    """Pids of this process's ancestors (parent, grand-parent, ...; only the parent off Linux)."""
    out, pid = set(), os.getppid()
    while pid > 0 and pid not in out:
        out.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def _describe(info: dict) -> str:
    cmd = str(info.get("command", "?"))
    cmd = cmd if len(cmd) <= 100 else cmd[:97] + "..."
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} ({cmd!r}, since {info.get('started', '?')})"


class OutputLock:
    """One writer per output folder; use as a context manager (released on exit and on errors).

    ``OutputLock(folder, "vqdna tokenize ...")``: creates ``folder`` if needed (and removes it
    again on release if it is still empty), takes ``folder/.vqdna.lock`` or raises
    :class:`LockError` naming the holder. ``message``: where notes go (stale lock taken over).
    """

    def __init__(self, folder: str | os.PathLike, command: str, *, message=None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self.message = message or (lambda s: print(s, file=sys.stderr))
        self.owner = False  # True when this object took the lock (and must release it)
        self.created = False
        self._fd = None
        self._env_before = None

    # -------------------------------------------------------- public
    def acquire(self) -> "OutputLock":
        if not self.folder.exists():
            check_writable(self.folder)
            self.folder.mkdir(parents=True, exist_ok=True)
            self.created = True
        if self._held_by_ancestor_env():
            return self
        try:
            import fcntl
        except ImportError:  # not POSIX: an exclusive-create lock file and a pid check
            return self._acquire_exclusive()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                info = self._read_holder()
                if self._is_ancestor(info):
                    return self
                raise LockError(f"{self.path}: {self.folder} is being written by {_describe(info)}; wait for it "
                                f"to finish or give another output folder") from None
            # the path may have been released (unlinked) between open and flock: lock the live file only
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        old = os.read(fd, 1 << 16)
        if old.strip():
            self._note_stale(old)
        self._write_info(fd)
        self._took()
        return self

    def release(self) -> None:
        if self.owner:
            try:
                self.path.unlink(missing_ok=True)
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                self.owner = False
                if self._env_before is not None:
                    os.environ[HELD_ENV] = self._env_before
                else:
                    os.environ.pop(HELD_ENV, None)
        if self.created:
            try:
                self.folder.rmdir()  # only if the failed command left it empty
            except OSError:
                pass
            self.created = False

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # -------------------------------------------------------- helpers
    def _info(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "started": _now()}

    def _write_info(self, fd: int) -> None:
        data = json.dumps(self._info(), indent=2).encode() + b"\n"
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)
        os.fsync(fd)

    def _took(self) -> None:
        self.owner = True
        self._env_before = os.environ.get(HELD_ENV)
        held = [p for p in (self._env_before or "").split(os.pathsep) if p]
        os.environ[HELD_ENV] = os.pathsep.join(held + [str(self.folder.resolve())])

    def _held_by_ancestor_env(self) -> bool:
        """This process was started (directly or not) by the lock's holder: ``VQDNA_LOCK_HELD``
        names the folder and the lock file names a live process of this host."""
        held = [p for p in os.environ.get(HELD_ENV, "").split(os.pathsep) if p]
        if str(self.folder.resolve()) not in held or self.owner:
            return False
        info = self._read_holder()
        pid = info.get("pid")
        return info.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() \
            and _pid_alive(pid)

    def _read_holder(self) -> dict:
        try:
            info = json.loads(self.path.read_text() or "{}")
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _is_ancestor(info: dict) -> bool:
        return info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int) \
            and info["pid"] in _ancestors()

    def _note_stale(self, raw: bytes) -> None:
        try:
            info = json.loads(raw)
            who = _describe(info) if isinstance(info, dict) else "an unreadable holder"
        except ValueError:
            who = "an unreadable holder"
        self.message(f"note: {self.path}: taking over the stale lock of {who}, which no longer runs (killed?)")

    def _acquire_exclusive(self) -> "OutputLock":
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = self._read_holder()
                if self._is_ancestor(info):
                    return self
                pid = info.get("pid")
                alive = isinstance(pid, int) and _pid_alive(pid)
                if info.get("host") not in (None, socket.gethostname()) or alive:
                    raise LockError(f"{self.path}: {self.folder} is being written by {_describe(info)}; wait for "
                                    f"it to finish or give another output folder (delete the lock file if that "
                                    f"run is gone)") from None
                self._note_stale(json.dumps(info).encode())
                self.path.unlink(missing_ok=True)
                continue
            self._fd = fd
            self._write_info(fd)
            self._took()
            return self
        raise LockError(f"{self.path}: could not take the lock (other processes keep taking it)")


def portable_path(path) -> str:
    """A path fit for committed results: relative to the working directory when it is on the
    same tree (``../shared/data/GUE/mouse/0``), else the file name alone (a genome inside an
    installed package), never an absolute path of this machine."""
    p = Path(path).resolve()
    rel = os.path.relpath(p)
    return rel if not rel.startswith(("../../", "..\\..")) else p.name
