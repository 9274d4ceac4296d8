// Fuzz the "key = value" parser behind bridge.conf, vtpm-setup.conf and the
// host's ledger and record files: every line it returns has a key, and no
// value keeps surrounding white space.
#include <cstdlib>
#include <string_view>

#include "util/key_value.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto kv = vtpm::parse_key_values(text, "fuzz");
    if (!kv) return 0;
    for (const auto& e : *kv) {
        if (e.key.empty()) std::abort();
        if (!e.value.empty() && (e.value.front() == ' ' || e.value.back() == ' ')) std::abort();
    }
    return 0;
}
