# Sourced by gpu_check.sh and cifar_protocol.sh (not run on its own).
# CIFAR-100 in the npz layout (train_0.npz .. train_4.npz, test.npz) may lie in DATA_DIR itself or
# spread over its sub-folders, one level down: the files reach the device machine over several
# calls of at most 64 MiB each (benchmarks/RESULTS.md). `gather_cifar_npz DATA_DIR LINK_DIR` links
# them all into LINK_DIR (nothing is copied) and fails, naming what it found, when one is missing.
gather_cifar_npz() {
    local src=$1 dst=$2 f found
    for f in $(find -L "$src" -maxdepth 2 \( -name 'train_*.npz' -o -name 'test.npz' \) | sort); do
        ln -sf "$(readlink -f "$f")" "$dst/$(basename "$f")"
    done
    found=$(ls "$dst" | tr '\n' ' ')
    if [ "$(ls "$dst" | grep -c '^train_[0-4]\.npz$')" -ne 5 ] || [ ! -e "$dst/test.npz" ]; then
        echo "error: $src must hold train_0.npz .. train_4.npz and test.npz, in it or in its sub-folders (found: ${found:-nothing})" >&2
        return 2
    fi
}
