#include "tpm/mu.hpp"

#include <optional>
#include <string>

#include "util/dynlib.hpp"

namespace vtpm::tpm::mu {
namespace {

struct Api {
#define VTPM_MU_MEMBER(T)                           \
    decltype(&::Tss2_MU_##T##_Marshal) T##_Marshal; \
    decltype(&::Tss2_MU_##T##_Unmarshal) T##_Unmarshal;
    VTPM_MU_TYPES(VTPM_MU_MEMBER)
#undef VTPM_MU_MEMBER
};

struct Loaded {
    Api api{};
    std::optional<Error> error;  // set when loading failed
};

Loaded load_once() {
    Loaded l;
    auto opened = open_library("libtss2-mu.so.0", "cannot load tpm2-tss's libtss2-mu: ");
    if (!opened) {
        l.error = opened.error();
        return l;
    }
    void* lib = *opened;
    bool ok = true;
#define VTPM_MU_RESOLVE(T)                                                         \
    ok = ok && resolve_symbol(lib, "Tss2_MU_" #T "_Marshal", l.api.T##_Marshal) && \
         resolve_symbol(lib, "Tss2_MU_" #T "_Unmarshal", l.api.T##_Unmarshal);
    VTPM_MU_TYPES(VTPM_MU_RESOLVE)
#undef VTPM_MU_RESOLVE
    if (!ok) l.error = make_error(rc::kFail, std::string("libtss2-mu lacks a function lib/tpm uses: ") + ::dlerror());
    return l;
}

const Loaded& loaded() {
    static const Loaded l = load_once();  // thread-safe, once
    return l;
}

const Api* api() {
    const Loaded& l = loaded();
    return l.error ? nullptr : &l.api;
}

}  // namespace

Result<void> load() {
    if (const auto& e = loaded().error) return *e;
    return {};
}

#define VTPM_MU_DEFINE(T)                                                                              \
    TSS2_RC T##_Marshal(const T* src, uint8_t buffer[], size_t buffer_size, size_t* offset) {          \
        const Api* a = api();                                                                          \
        return a ? a->T##_Marshal(src, buffer, buffer_size, offset) : TSS2_MU_RC_BAD_REFERENCE;        \
    }                                                                                                  \
    TSS2_RC T##_Unmarshal(const uint8_t buffer[], size_t buffer_size, size_t* offset, T* dest) {       \
        const Api* a = api();                                                                          \
        return a ? a->T##_Unmarshal(buffer, buffer_size, offset, dest) : TSS2_MU_RC_BAD_REFERENCE;     \
    }
VTPM_MU_TYPES(VTPM_MU_DEFINE)
#undef VTPM_MU_DEFINE

}  // namespace vtpm::tpm::mu
