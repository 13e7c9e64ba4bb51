#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of shmbus from Debian bookworm packages.
# Idempotent: packages already present are left alone. Works as root or through sudo.
set -euo pipefail

packages=(
    build-essential g++ cmake ninja-build pkg-config git
    libuv1-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
    # OpenSSL (libssl, libcrypto): the gateway's HMAC-SHA256 challenge and its TLS links, and
    # the machine's application-specific id (the daemon speaks systemd's protocols itself).
    libssl-dev
    # NATS bridges (docs/nats.md): the C client, and the server the tests start themselves.
    libnats-dev nats-server
    catch2 libcli11-dev nlohmann-json3-dev
    # Standalone asio, header-only: the asio event-loop example (examples/event-loop/) and
    # its test; without it both are left out, the test reported as skipped.
    libasio-dev
    gnuplot-nox
    # The Python package (python/, built on the CPython C API) and its pytest suite
    # (tests/python/); dh-python builds python3-shmbus.
    python3-dev python3-pytest dh-python
    # The libFuzzer targets (the fuzz preset, tests/fuzz/): clang 14 and its libFuzzer.
    clang-14 libfuzzer-14-dev
    # Debian packages and systemd units (packaging/build-deb.sh, tests/packaging/): debhelper
    # 13 with dh_installsysusers, lintian, and systemd for systemd-analyze and
    # systemd-socket-activate (it need not be PID 1).
    debhelper dpkg-dev fakeroot lintian systemd
    # The packages under systemd as PID 1 (tests/systemd/): a bookworm root, booted.
    mmdebstrap systemd-container
    # The ABI check against the last release tag (tests/packaging/abi-check.sh): abidiff,
    # from libabigail (bookworm names the package abigail-tools).
    abigail-tools
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages already installed"
    exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    as_root=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
