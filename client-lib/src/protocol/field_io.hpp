// The field reader and writer behind shmbus's table-driven wire codecs: the control protocol
// (wire.cpp) and the gateway's bridge frames (daemon/gateway/frame.cpp).
//
// A codec describes each message once, by a `fields(io, value, path)` function per struct that
// lists its fields in wire order. The same function drives both directions: a Writer
// serialises, a Reader parses, so an encoder and a decoder that disagree about a field cannot
// be written. `fields()` overloads must live in a namespace that argument-dependent lookup
// reaches from the struct (the struct's own namespace) or in shmbus::proto itself.
//
// Reader: a bounds-checked cursor over untrusted bytes. Every read checks the bytes left
// before touching them; the first failure is remembered (naming the message and the dotted
// path of the field, "open_reply: field 'info.name'") and every later read is a no-op, so a
// fields() function reads straight through and the caller checks once. Lists grow element by
// element as elements decode, never from a count the peer claims, so a hostile count cannot
// make us allocate. Failures are Errc::protocol_error.
//
// Writer: appends little-endian fixed-width integers; refuses a string, a list or a message
// beyond the codec's FieldLimits, and an enum value the protocol does not define, with
// Errc::invalid_argument naming the field, so that we never send what a peer rejects.
//
// An enum travels only if a `defined(E) -> bool` and an `enum_name(E) -> string_view`
// overload are visible for it (here for the shared enums, beside the enum for others).
//
// Nothing here throws except std::bad_alloc from the standard containers.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/error.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace shmbus::proto {

/// What one codec allows: the longest string and list, and the largest encoded message.
struct FieldLimits {
    std::size_t max_string_bytes{0};
    std::size_t max_list_items{0};
    std::size_t max_message_bytes{0};
};

inline constexpr std::size_t kNoIndex = std::numeric_limits<std::size_t>::max();

/// Where a field sits in a body: a chain of parents on the stack, rendered as
/// "info.name" or "channels[3].info.name" only when something fails.
struct FieldPath {
    const FieldPath* parent{nullptr};
    std::string_view name;
    std::size_t index{kNoIndex}; ///< set for a list element
};

inline void render(const FieldPath& path, std::string& out) {
    if (path.parent != nullptr) {
        render(*path.parent, out);
    }
    if (!path.name.empty()) {
        if (!out.empty()) {
            out += '.';
        }
        out += path.name;
    }
    if (path.index != kNoIndex) {
        out += '[';
        out += std::to_string(path.index);
        out += ']';
    }
}

// ---- enums: which values the protocol defines ----

inline bool defined(ChannelKind v) noexcept {
    return v == ChannelKind::queue || v == ChannelKind::broadcast || v == ChannelKind::blackboard ||
           v == ChannelKind::counters || v == ChannelKind::rpc || v == ChannelKind::pool;
}
inline bool defined(Overflow v) noexcept {
    return v == Overflow::block || v == Overflow::drop;
}
inline bool defined(Role v) noexcept {
    return v == Role::publisher || v == Role::subscriber;
}
inline bool defined(Errc v) noexcept {
    // errc_name() knows every code error.hpp defines, so this follows new codes by itself.
    return errc_name(v) != "unknown_error";
}
inline std::string_view enum_name(ChannelKind) noexcept {
    return "ChannelKind";
}
inline std::string_view enum_name(Overflow) noexcept {
    return "Overflow";
}
inline std::string_view enum_name(Role) noexcept {
    return "Role";
}
inline std::string_view enum_name(Errc) noexcept {
    return "Errc";
}

template <typename E>
concept WireEnum = std::is_enum_v<E> && requires(E e) {
    { defined(e) } -> std::same_as<bool>;
};

template <typename T>
concept WireInteger = std::integral<T> && !std::same_as<T, bool>;

/// `T` is U or const U: lets one fields() overload serve the Writer (const) and the Reader.
template <typename T, typename U>
concept Is = std::same_as<std::remove_const_t<T>, U>;

template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};

// ---- little-endian loads and stores, for headers read before any Reader ----

inline std::uint32_t load_u32(const std::byte* p) noexcept {
    return std::to_integer<std::uint32_t>(p[0]) | std::to_integer<std::uint32_t>(p[1]) << 8 |
           std::to_integer<std::uint32_t>(p[2]) << 16 | std::to_integer<std::uint32_t>(p[3]) << 24;
}

inline std::uint16_t load_u16(const std::byte* p) noexcept {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) |
                                      std::to_integer<unsigned>(p[1]) << 8);
}

inline void store_u32(std::byte* p, std::uint32_t v) noexcept {
    for (int i = 0; i < 4; ++i) {
        p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xffU);
    }
}

/// "0x53554253": a magic number as a reader of hex dumps sees it.
inline std::string hex32(std::uint32_t v) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out = "0x";
    for (int shift = 28; shift >= 0; shift -= 4) {
        out += kDigits[(v >> shift) & 0xfU];
    }
    return out;
}

// ---- Writer ----

class Writer {
public:
    Writer(std::vector<std::byte>& out, std::string_view message_name, FieldLimits limits)
        : out_{out}, message_name_{message_name}, limits_{limits} {}

    template <WireInteger T>
    void field(const T& v, const FieldPath& path) {
        put(static_cast<std::make_unsigned_t<T>>(v), path);
    }

    void field(const bool& v, const FieldPath& path) {
        put(static_cast<std::uint8_t>(v ? 1 : 0), path);
    }

    template <WireEnum E>
    void field(const E& v, const FieldPath& path) {
        if (!defined(v)) {
            fail(path, "holds " + std::to_string(static_cast<std::underlying_type_t<E>>(v)) +
                           ", which is not a valid " + std::string{enum_name(v)});
            return;
        }
        put(static_cast<std::underlying_type_t<E>>(v), path);
    }

    void field(const std::string& s, const FieldPath& path) {
        if (s.size() > limits_.max_string_bytes) {
            fail(path, "is " + std::to_string(s.size()) + " bytes, above the limit of " +
                           std::to_string(limits_.max_string_bytes));
            return;
        }
        put(static_cast<std::uint32_t>(s.size()), path);
        if (room(s.size(), path)) {
            const auto* p = reinterpret_cast<const std::byte*>(s.data());
            out_.insert(out_.end(), p, p + s.size());
        }
    }

    template <typename T>
    void field(const std::vector<T>& items, const FieldPath& path) {
        if (items.size() > limits_.max_list_items) {
            fail(path, "has " + std::to_string(items.size()) + " items, above the limit of " +
                           std::to_string(limits_.max_list_items));
            return;
        }
        put(static_cast<std::uint32_t>(items.size()), path);
        for (std::size_t i = 0; i < items.size() && ok(); ++i) {
            field(items[i], FieldPath{&path, {}, i});
        }
    }

    template <typename T>
    requires std::is_class_v<T> &&
        (!IsVector<T>::value) void field(const T& v, const FieldPath& path) {
        fields(*this, v, path);
    }

    /// Refuses to send a value the protocol does not allow.
    /// A field appended by a later minor version: always written.
    [[nodiscard]] static constexpr bool extension_present() noexcept { return true; }

    void require(bool condition, const FieldPath& path, std::string_view problem) {
        if (!condition && ok()) {
            fail(path, std::string{problem});
        }
    }

    [[nodiscard]] bool ok() const noexcept { return !error_.has_value(); }
    [[nodiscard]] Error take_error() { return std::move(*error_); }

    /// Appends `bytes` as they are.
    void raw(std::span<const std::byte> bytes, const FieldPath& path) {
        if (room(bytes.size(), path)) {
            out_.insert(out_.end(), bytes.begin(), bytes.end());
        }
    }

private:
    template <std::unsigned_integral U>
    void put(U v, const FieldPath& path) {
        if (!room(sizeof(U), path)) {
            return;
        }
        for (std::size_t i = 0; i < sizeof(U); ++i) {
            out_.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xffU));
        }
    }

    bool room(std::size_t bytes, const FieldPath& path) {
        if (!ok()) {
            return false;
        }
        if (out_.size() + bytes > limits_.max_message_bytes) {
            fail(path, "does not fit: the message would exceed " +
                           std::to_string(limits_.max_message_bytes) + " bytes");
            return false;
        }
        return true;
    }

    void fail(const FieldPath& path, const std::string& problem) {
        if (!ok()) {
            return;
        }
        std::string where;
        render(path, where);
        error_ = make_error(Errc::invalid_argument, "cannot encode " + std::string{message_name_} +
                                                        ": field '" + where + "' " + problem);
    }

    std::vector<std::byte>& out_;
    std::string_view message_name_;
    FieldLimits limits_;
    std::optional<Error> error_;
};

// ---- Reader ----

class Reader {
public:
    Reader(std::span<const std::byte> bytes, std::string_view message_name, FieldLimits limits)
        : bytes_{bytes}, message_name_{message_name}, limits_{limits} {}

    template <WireInteger T>
    void field(T& v, const FieldPath& path) {
        std::make_unsigned_t<T> u{};
        if (get(u, path)) {
            v = static_cast<T>(u);
        }
    }

    void field(bool& v, const FieldPath& path) {
        std::uint8_t u{};
        if (!get(u, path)) {
            return;
        }
        if (u > 1) {
            fail(path, "holds " + std::to_string(u) + ", which is not a boolean (0 or 1)");
            return;
        }
        v = u == 1;
    }

    template <WireEnum E>
    void field(E& v, const FieldPath& path) {
        std::underlying_type_t<E> u{};
        if (!get(u, path)) {
            return;
        }
        if (!defined(static_cast<E>(u))) {
            fail(path, "holds " + std::to_string(u) + ", which is not a valid " +
                           std::string{enum_name(E{})});
            return;
        }
        v = static_cast<E>(u);
    }

    void field(std::string& s, const FieldPath& path) {
        std::uint32_t length = 0;
        if (!get(length, path)) {
            return;
        }
        if (length > limits_.max_string_bytes) {
            fail(path, "claims " + std::to_string(length) + " bytes, above the limit of " +
                           std::to_string(limits_.max_string_bytes));
            return;
        }
        const std::byte* p = take(length, path);
        if (p != nullptr) {
            s.assign(reinterpret_cast<const char*>(p), length);
        }
    }

    template <typename T>
    void field(std::vector<T>& items, const FieldPath& path) {
        std::uint32_t count = 0;
        if (!get(count, path)) {
            return;
        }
        if (count > limits_.max_list_items) {
            fail(path, "claims " + std::to_string(count) + " items, above the limit of " +
                           std::to_string(limits_.max_list_items));
            return;
        }
        items.clear();
        // Grown as elements decode: a count the bytes cannot back allocates nothing.
        for (std::uint32_t i = 0; i < count && ok(); ++i) {
            T item{};
            field(item, FieldPath{&path, {}, i});
            if (ok()) {
                items.push_back(std::move(item));
            }
        }
    }

    template <typename T>
    requires std::is_class_v<T> &&(!IsVector<T>::value) void field(T& v, const FieldPath& path) {
        fields(*this, v, path);
    }

    /// Rejects a decoded value the protocol does not allow.
    /// Whether the body goes on past the fields read so far: a field appended by a later
    /// minor version is read only then, and an older peer's body ends before it.
    [[nodiscard]] bool extension_present() const noexcept { return ok() && pos_ < bytes_.size(); }

    void require(bool condition, const FieldPath& path, std::string_view problem) {
        if (!condition && ok()) {
            fail(path, std::string{problem});
        }
    }

    [[nodiscard]] bool ok() const noexcept { return !error_.has_value(); }
    [[nodiscard]] Error take_error() { return std::move(*error_); }

    /// The next `n` raw bytes as a view into the input (for payloads a codec does not copy);
    /// empty and the failure recorded if fewer remain.
    [[nodiscard]] std::span<const std::byte> raw(std::size_t n, const FieldPath& path) {
        const std::byte* p = take(n, path);
        return p == nullptr ? std::span<const std::byte>{} : std::span<const std::byte>{p, n};
    }

    /// Bytes not read yet.
    [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

private:
    /// The next `n` bytes, or nullptr (and the failure recorded) if fewer remain.
    const std::byte* take(std::size_t n, const FieldPath& path) {
        if (!ok()) {
            return nullptr;
        }
        const std::size_t left = bytes_.size() - pos_;
        if (n > left) {
            fail(path, "is truncated: " + std::to_string(n) + (n == 1 ? " byte" : " bytes") +
                           " needed, " + std::to_string(left) + " left");
            return nullptr;
        }
        const std::byte* p = bytes_.data() + pos_;
        pos_ += n;
        return p;
    }

    template <std::unsigned_integral U>
    bool get(U& v, const FieldPath& path) {
        const std::byte* p = take(sizeof(U), path);
        if (p == nullptr) {
            return false;
        }
        U out = 0;
        for (std::size_t i = 0; i < sizeof(U); ++i) {
            out =
                static_cast<U>(out | (static_cast<U>(std::to_integer<unsigned>(p[i])) << (8 * i)));
        }
        v = out;
        return true;
    }

    void fail(const FieldPath& path, const std::string& problem) {
        if (!ok()) {
            return;
        }
        std::string where;
        render(path, where);
        error_ = make_error(Errc::protocol_error,
                            std::string{message_name_} + ": field '" + where + "' " + problem);
    }

    std::span<const std::byte> bytes_;
    std::size_t pos_{0};
    std::string_view message_name_;
    FieldLimits limits_;
    std::optional<Error> error_;
};

} // namespace shmbus::proto
