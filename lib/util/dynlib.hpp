// Libraries loaded when a feature first needs them (libfuse3 for cuse,
// libtss2-mu for TPM structures), so a plain bridge does not map them.
#pragma once

#include <dlfcn.h>

#include <string>
#include <string_view>

#include "vtpm/result.hpp"

namespace vtpm {

/// dlopen(`soname`) with every symbol bound now, kept for the life of the
/// process as a linked library would be. The error is `failure` followed by
/// the loader's reason.
inline Result<void*> open_library(const char* soname, std::string_view failure) {
    void* lib = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return make_error(rc::kFail, std::string(failure) + ::dlerror());
    return lib;
}

/// Sets `out` to the function `name` of `lib`; false (and `out` null) when
/// the library lacks it.
template <typename F>
bool resolve_symbol(void* lib, const char* name, F& out) {
    out = reinterpret_cast<F>(::dlsym(lib, name));
    return out != nullptr;
}

}  // namespace vtpm
