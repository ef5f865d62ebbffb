# PyInstaller hook (build.spec hookspath): keep llama.cpp's libraries only in llama_cpp/lib (and lib-cpu).
#
# By default PyInstaller links every dependency it finds into _internal/ as well (libggml.so.0 ->
# llama_cpp/lib/libggml.so.0), and the bootloader puts _internal/ on LD_LIBRARY_PATH, which the loader searches
# before a library's RUNPATH. Then lib-cpu/libllama.so would bind to the GPU build's libggml.so.0 (and through
# it libggml-cuda -> libcuda.so.1), and the CPU fallback would fail exactly where it is needed. Each libllama
# finds its own ggml beside it through RUNPATH $ORIGIN.
import os

bindepend_symlink_suppression = ["*/llama_cpp/lib/*"]
if os.environ.get("DESKTOP_CHAT_CPU_LIB"):
    bindepend_symlink_suppression.append(os.path.join(os.path.abspath(os.environ["DESKTOP_CHAT_CPU_LIB"]), "*"))
