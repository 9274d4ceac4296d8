#include "util/uuid.hpp"

#include <cctype>

#include "util/bytes.hpp"

namespace vtpm {

Result<std::string> canonical_uuid(std::string_view text) {
    std::string out;
    for (char c : text) {
        const bool dash_pos = out.size() == 8 || out.size() == 13 || out.size() == 18 || out.size() == 23;
        if (dash_pos) {
            if (c != '-') break;
            out += '-';
            continue;
        }
        if (!std::isxdigit(static_cast<unsigned char>(c))) break;
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (out.size() != 36 || text.size() != 36)
        return make_error(rc::kBadParameter, "'" + std::string(text) + "' is not a UUID (8-4-4-4-12 hex digits)");
    return out;
}

Result<Uuid> parse_uuid(std::string_view text) {
    auto canon = canonical_uuid(text);
    if (!canon) return canon.error();
    std::string hex;
    for (char c : *canon)
        if (c != '-') hex += c;
    auto raw = from_hex(hex);
    if (!raw || raw->size() != 16) return make_error(rc::kBadParameter, "'" + std::string(text) + "' is not a UUID");
    Uuid out{};
    std::copy(raw->begin(), raw->end(), out.begin());
    return out;
}

std::string format_uuid(const Uuid& u) {
    const std::string h = to_hex(u);
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

}  // namespace vtpm
