#include "util/subopts.hpp"

#include <grp.h>
#include <pwd.h>
#include <strings.h>

#include <algorithm>
#include <charconv>

namespace vtpm {

std::string_view strtol_digits(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || (v.front() >= '\t' && v.front() <= '\r'))) v.remove_prefix(1);
    if (v.size() > 1 && v.front() == '+' && v[1] != '-' && v[1] != '+') v.remove_prefix(1);
    return v;
}

Result<SubOpts> SubOpts::parse(std::string_view text,
                               const std::vector<std::string_view>& allowed) {
    SubOpts out;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t comma = text.find(',', pos);
        if (comma == std::string_view::npos) comma = text.size();
        std::string_view tok = text.substr(pos, comma - pos);
        pos = comma + 1;
        if (tok.empty()) continue;
        std::string_view name = tok, value = "true";
        if (size_t eq = tok.find('='); eq != std::string_view::npos) {
            name = tok.substr(0, eq);
            value = tok.substr(eq + 1);
            if (value.empty())
                return make_error(rc::kBadParameter, "Unknown option '" + std::string(tok) + "'");
        }
        if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
            return make_error(rc::kBadParameter, "Unknown option '" + std::string(tok) + "'");
        if (!out.has(name)) out.kv_.emplace_back(std::string(name), std::string(value));
    }
    return out;
}

bool SubOpts::has(std::string_view name) const {
    return std::any_of(kv_.begin(), kv_.end(), [&](const auto& p) { return p.first == name; });
}

std::optional<std::string> SubOpts::str(std::string_view name) const {
    for (const auto& [k, v] : kv_)
        if (k == name) return v;
    return std::nullopt;
}

bool SubOpts::flag(std::string_view name, bool dflt) const {
    auto v = str(name);
    if (!v) return dflt;
    return strcasecmp(v->c_str(), "true") == 0 || *v == "1";
}

Result<std::optional<long>> SubOpts::integer(std::string_view name) const {
    auto v = str(name);
    if (!v) return std::optional<long>{};
    long n = 0;
    const std::string_view d = strtol_digits(*v);
    auto [p, ec] = std::from_chars(d.data(), d.data() + d.size(), n, 10);
    if (ec != std::errc{} || p != d.data() + d.size())
        return make_error(rc::kBadParameter,
                          "Invalid number '" + *v + "' for option '" + std::string(name) + "'");
    return std::optional<long>{n};
}

Result<std::optional<mode_t>> SubOpts::mode(std::string_view name) const {
    auto v = str(name);
    if (!v) return std::optional<mode_t>{};
    unsigned long m = 0;
    const std::string_view d = strtol_digits(*v);
    auto [p, ec] = std::from_chars(d.data(), d.data() + d.size(), m, 8);
    if (ec != std::errc{} || p != d.data() + d.size() || m > 0777)
        return make_error(rc::kBadParameter,
                          "Invalid mode '" + *v + "' for option '" + std::string(name) + "'");
    return std::optional<mode_t>{static_cast<mode_t>(m)};
}

Result<std::optional<uid_t>> SubOpts::uid(std::string_view name) const {
    auto v = str(name);
    if (!v) return std::optional<uid_t>{};
    unsigned long n = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n, 10);
    if (ec == std::errc{} && p == v->data() + v->size()) return std::optional<uid_t>{static_cast<uid_t>(n)};
    if (const passwd* pw = ::getpwnam(v->c_str())) return std::optional<uid_t>{pw->pw_uid};
    return make_error(rc::kBadParameter, "Unknown user '" + *v + "' for option '" + std::string(name) + "'");
}

Result<std::optional<gid_t>> SubOpts::gid(std::string_view name) const {
    auto v = str(name);
    if (!v) return std::optional<gid_t>{};
    unsigned long n = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n, 10);
    if (ec == std::errc{} && p == v->data() + v->size()) return std::optional<gid_t>{static_cast<gid_t>(n)};
    if (const group* gr = ::getgrnam(v->c_str())) return std::optional<gid_t>{gr->gr_gid};
    return make_error(rc::kBadParameter, "Unknown group '" + *v + "' for option '" + std::string(name) + "'");
}

}  // namespace vtpm
