// C ABI of libvtpm (include/vtpm/vtpm.h). Filled in with the engine.
