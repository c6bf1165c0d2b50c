"""Build backend (PEP 517) of the segserve Python client, standard library only.

Why not setuptools: pip builds a pyproject.toml project in an isolated environment and
installs the backend's requirements into it from an index, so on an offline machine
`pip install ./client/python` with `requires = ["setuptools"]` fails before building
anything. A backend in this tree with no requirements builds offline. It does three things:
stage the hand-written package, generate the gRPC stubs from proto/segserve/v1 with protoc
and grpc_python_plugin (the generated code is never committed), and zip a wheel.

Also a command line for running in place (what the cmake target `python_client` calls):
  python3 client/python/build_backend/segserve_build.py OUT_DIR [--proto_dir DIR]
writes OUT_DIR/segserve (package and stubs); then PYTHONPATH=OUT_DIR.

Environment: SEGSERVE_PROTO_DIR (the directory holding segserve/v1/*.proto; default: the
repository's proto/, or proto/ inside an sdist), PROTOC and GRPC_PYTHON_PLUGIN (tool paths;
default: from PATH, then /usr/bin).
"""
import base64
import glob
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # client/python
PACKAGE = "segserve"
# Files of a zip or tar carry this time, so the same sources give the same archive.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _project():
    """name, version, description, requires-python, dependencies of pyproject.toml."""
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("[project]", 1)[1].split("\n[", 1)[0]
    fields = {}
    for key in ("name", "version", "description", "requires-python"):
        match = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(key), section, re.M)
        fields[key] = match.group(1) if match else ""
    match = re.search(r"^dependencies\s*=\s*\[([^\]]*)\]", section, re.M)
    fields["dependencies"] = re.findall(r'"([^"]+)"', match.group(1)) if match else []
    return fields


def _dist_name():
    project = _project()
    return "%s-%s" % (project["name"].replace("-", "_"), project["version"])


def proto_dir():
    for candidate in (os.environ.get("SEGSERVE_PROTO_DIR"), os.path.join(ROOT, "proto"),
                      os.path.join(ROOT, "..", "..", "proto")):
        if candidate and glob.glob(os.path.join(candidate, "segserve", "v1", "*.proto")):
            return os.path.abspath(candidate)
    raise RuntimeError("segserve_build: no segserve/v1/*.proto found; set SEGSERVE_PROTO_DIR "
                       "to the repository's proto/ directory")


def _tool(env, name):
    path = os.environ.get(env) or shutil.which(name) or os.path.join("/usr/bin", name)
    if not os.access(path, os.X_OK):
        raise RuntimeError("segserve_build: %s not found (Debian: apt-get install "
                           "protobuf-compiler protobuf-compiler-grpc; or set %s)" % (name, env))
    return path


def generate_stubs(out_root, protos=None):
    """Writes out_root/segserve/v1/*_pb2.py, *_pb2.pyi and *_pb2_grpc.py."""
    protos = protos or proto_dir()
    files = sorted(os.path.relpath(p, protos)
                   for p in glob.glob(os.path.join(protos, "segserve", "v1", "*.proto")))
    subprocess.run([_tool("PROTOC", "protoc"), "-I" + protos, "--python_out=" + out_root,
                    "--pyi_out=" + out_root, "--grpc_python_out=" + out_root,
                    "--plugin=protoc-gen-grpc_python=" +
                    _tool("GRPC_PYTHON_PLUGIN", "grpc_python_plugin")] + files, check=True)
    with open(os.path.join(out_root, PACKAGE, "v1", "__init__.py"), "w") as f:
        f.write('"""segserve.v1 messages and stubs, generated from proto/segserve/v1."""\n')


def stage(out_root, protos=None):
    """out_root/segserve: the hand-written package plus the generated stubs."""
    target = os.path.join(out_root, PACKAGE)
    if os.path.realpath(target) == os.path.realpath(os.path.join(ROOT, PACKAGE)):
        raise RuntimeError("segserve_build: OUT_DIR must not be client/python itself (the "
                           "stubs are never written into the source tree)")
    if os.path.isdir(target):
        shutil.rmtree(target)
    shutil.copytree(os.path.join(ROOT, PACKAGE), target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "v1"))
    generate_stubs(out_root, protos)
    return target


def _metadata_text():
    project = _project()
    lines = ["Metadata-Version: 2.1", "Name: " + project["name"], "Version: " + project["version"],
             "Summary: " + project["description"]]
    if project["requires-python"]:
        lines.append("Requires-Python: " + project["requires-python"])
    lines += ["Requires-Dist: " + d for d in project["dependencies"]]
    lines.append("Description-Content-Type: text/markdown")
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return "\n".join(lines) + "\n\n" + f.read()


def _dist_info_files():
    wheel = ("Wheel-Version: 1.0\nGenerator: segserve_build\nRoot-Is-Purelib: true\n"
             "Tag: py3-none-any\n")
    return {"METADATA": _metadata_text(), "WHEEL": wheel}


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name = _dist_name() + ".dist-info"
    os.makedirs(os.path.join(metadata_directory, name), exist_ok=True)
    for file, text in _dist_info_files().items():
        with open(os.path.join(metadata_directory, name, file), "w", encoding="utf-8") as f:
            f.write(text)
    return name


def _zip_add(archive, record, arcname, data):
    info = zipfile.ZipInfo(arcname, FIXED_TIME)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append("%s,sha256=%s,%d" % (arcname, digest, len(data)))


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    filename = _dist_name() + "-py3-none-any.whl"
    dist_info = _dist_name() + ".dist-info"
    with tempfile.TemporaryDirectory() as staging:
        stage(staging)
        record = []
        with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as archive:
            for directory, dirs, files in sorted(os.walk(staging)):
                dirs.sort()
                for file in sorted(files):
                    path = os.path.join(directory, file)
                    with open(path, "rb") as f:
                        _zip_add(archive, record, os.path.relpath(path, staging).replace(os.sep, "/"),
                                 f.read())
            for file, text in _dist_info_files().items():
                _zip_add(archive, record, dist_info + "/" + file, text.encode("utf-8"))
            record.append(dist_info + "/RECORD,,")
            info = zipfile.ZipInfo(dist_info + "/RECORD", FIXED_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, "\n".join(record) + "\n")
    return filename


def build_sdist(sdist_directory, config_settings=None):
    """The client's sources plus the protos (under proto/), so the sdist builds on its own."""
    base = _dist_name()
    filename = base + ".tar.gz"
    members = []
    for directory, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "v1", "build", "dist"))
        members += [os.path.join(directory, f) for f in sorted(files) if not f.endswith(".pyc")]
    protos = proto_dir()
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        def add(path, arcname):
            with open(path, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(base + "/" + arcname)
            info.size, info.mode, info.mtime = len(data), 0o644, 315532800
            tar.addfile(info, io.BytesIO(data))
        for path in members:
            add(path, os.path.relpath(path, ROOT).replace(os.sep, "/"))
        for path in sorted(glob.glob(os.path.join(protos, "segserve", "v1", "*.proto"))):
            add(path, "proto/" + os.path.relpath(path, protos).replace(os.sep, "/"))
        add_text = _metadata_text().encode("utf-8")
        info = tarfile.TarInfo(base + "/PKG-INFO")
        info.size, info.mode, info.mtime = len(add_text), 0o644, 315532800
        tar.addfile(info, io.BytesIO(add_text))
    return filename


def main(argv):
    import argparse
    parser = argparse.ArgumentParser(description="Stage the segserve Python package with "
                                     "generated stubs into OUT_DIR (then PYTHONPATH=OUT_DIR).")
    parser.add_argument("out_dir")
    parser.add_argument("--proto_dir", default=None)
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    print(stage(os.path.abspath(args.out_dir), args.proto_dir and os.path.abspath(args.proto_dir)))


if __name__ == "__main__":
    main(sys.argv[1:])
