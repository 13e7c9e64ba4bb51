// TestPki: a certificate authority and the certificates it issues, made at run time with
// OpenSSL's API and written as PEM files into a test's directory (keys mode 0600), so that no
// key is ever committed. Keys are EC P-256 (fast to make); certificates are X.509 v3, signed
// with SHA-256, and carry their common name as a DNS subject alternative name unless told
// otherwise. Validity is relative to now, so an expired certificate is one whose window ended
// an hour ago.
//
// Failures throw std::runtime_error (a test that cannot make its certificates cannot run).
#pragma once

#include "gateway/tls_context.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace shmbus::test {

class TestPki {
public:
    /// Where an issued certificate and its key are.
    struct Issued {
        std::filesystem::path cert;
        std::filesystem::path key;
    };

    /// Makes a CA named `name` in `dir` (`dir`/`stem`-ca.crt).
    TestPki(std::filesystem::path dir, std::string stem, const std::string& name)
        : dir_{std::move(dir)}, stem_{std::move(stem)}, ca_key_{new_key()} {
        ca_cert_ = make_cert(name, {}, ca_key_.get(), nullptr, ca_key_.get(),
                             -std::chrono::hours{1}, std::chrono::hours{24}, true);
        ca_path_ = dir_ / (stem_ + "-ca.crt");
        write_cert(ca_path_, ca_cert_.get());
    }

    [[nodiscard]] const std::filesystem::path& ca() const noexcept { return ca_path_; }

    /// Issues a certificate for `common_name`, valid from `from` to `until` (relative to now),
    /// with `dns` as its DNS alternative names (by default the common name).
    Issued issue(const std::string& stem, const std::string& common_name,
                 std::optional<std::vector<std::string>> dns = std::nullopt,
                 std::chrono::seconds from = -std::chrono::hours{1},
                 std::chrono::seconds until = std::chrono::hours{24}) {
        auto key = new_key();
        auto cert = make_cert(common_name, dns.value_or(std::vector<std::string>{common_name}),
                              key.get(), ca_cert_.get(), ca_key_.get(), from, until, false);
        Issued out{dir_ / (stem + ".crt"), dir_ / (stem + ".key")};
        write_cert(out.cert, cert.get());
        write_key(out.key, key.get());
        return out;
    }

    /// The gateway's credentials for `issued`, trusting this CA.
    [[nodiscard]] gateway::TlsCredentials
    credentials(const Issued& issued,
                std::optional<std::string> peer_subject = std::nullopt) const {
        gateway::TlsCredentials c;
        c.cert_file = issued.cert.native();
        c.key_file = issued.key.native();
        c.ca_file = ca_path_.native();
        c.cert_pem = read(issued.cert);
        c.key_pem = read(issued.key);
        c.ca_pem = read(ca_path_);
        c.peer_subject = std::move(peer_subject);
        return c;
    }

private:
    struct KeyFree {
        void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
    };
    struct CertFree {
        void operator()(X509* x) const noexcept { X509_free(x); }
    };
    using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
    using Cert = std::unique_ptr<X509, CertFree>;

    static void check(bool ok, const char* what) {
        if (!ok) {
            throw std::runtime_error(std::string{"TestPki: "} + what + " failed");
        }
    }

    static Key new_key() {
        Key key{EVP_EC_gen("P-256")};
        check(key != nullptr, "EVP_EC_gen");
        return key;
    }

    static void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert, cert, nullptr, nullptr, 0);
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
        check(ext != nullptr, "X509V3_EXT_conf_nid");
        check(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
        X509_EXTENSION_free(ext);
    }

    Cert make_cert(const std::string& common_name, const std::vector<std::string>& dns,
                   EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, std::chrono::seconds from,
                   std::chrono::seconds until, bool ca) {
        Cert cert{X509_new()};
        check(cert != nullptr, "X509_new");
        X509_set_version(cert.get(), 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(++serial_));
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), static_cast<long>(from.count()));
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(until.count()));
        X509_set_pubkey(cert.get(), key);
        X509_NAME* name = X509_get_subject_name(cert.get());
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>("shmbus tests"), -1, -1,
                                   0);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                   -1, 0);
        X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
        if (ca) {
            add_extension(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE");
            add_extension(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
        } else {
            add_extension(cert.get(), issuer, NID_basic_constraints, "CA:FALSE");
            add_extension(cert.get(), issuer, NID_ext_key_usage, "serverAuth,clientAuth");
            std::string names;
            for (const auto& d : dns) {
                names += (names.empty() ? "" : ",") + std::string{"DNS:"} + d;
            }
            if (!names.empty()) {
                add_extension(cert.get(), issuer, NID_subject_alt_name, names);
            }
        }
        check(X509_sign(cert.get(), issuer_key, EVP_sha256()) > 0, "X509_sign");
        return cert;
    }

    static void write_cert(const std::filesystem::path& path, X509* cert) {
        std::FILE* f = std::fopen(path.c_str(), "we");
        check(f != nullptr, "fopen");
        const bool ok = PEM_write_X509(f, cert) == 1;
        std::fclose(f);
        check(ok, "PEM_write_X509");
    }

    static void write_key(const std::filesystem::path& path, EVP_PKEY* key) {
        std::FILE* f = std::fopen(path.c_str(), "we");
        check(f != nullptr, "fopen");
        const bool ok = PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
        std::fclose(f);
        check(ok, "PEM_write_PrivateKey");
        check(::chmod(path.c_str(), 0600) == 0, "chmod");
    }

    static std::string read(const std::filesystem::path& path) {
        std::ifstream in(path);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

    std::filesystem::path dir_;
    std::string stem_;
    Key ca_key_;
    Cert ca_cert_;
    std::filesystem::path ca_path_;
    long serial_{0};
};

} // namespace shmbus::test
