// Marks a function on the path every TPM command takes (receive, frame,
// libtpms, send, wait). GCC and clang put such functions in .text.hot, which
// the linker gathers in one place: the few KiB of our code a command runs
// sit in a couple of pages instead of one page per source file. A host's
// vTPMs mostly sleep, so each command starts with cold caches and TLB, and
// the pages it touches are what it pays for (bench/soak.py).
#pragma once

#define VTPM_HOT [[gnu::hot]]
