# Cross build for 64-bit Arm Linux with Debian's cross toolchain, run under
# qemu-user (`make check-aarch64`). Packages: gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user.
#
# ctest starts every test through CMAKE_CROSSCOMPILING_EMULATOR, so the same
# test list runs on this x86-64 machine. qemu-user translates the guest's
# atomics into the host's, so x86's stronger memory order hides weak-ordering
# bugs: this build checks the AArch64 context switch, the ABI and the
# portability of the code, not its fences.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config must not hand the host's libraries (libuv) to the cross linker.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig)
set(ENV{PKG_CONFIG_SYSROOT_DIR} /)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
