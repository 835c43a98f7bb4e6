// Test fixture: a throwaway CA and server certificate (localhost / 127.0.0.1) made with the
// openssl CLI in a temporary directory, removed again with the object.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <stdlib.h>
#include <string>

namespace respite::test {

// A throwaway CA, a server certificate for localhost / 127.0.0.1 and a client certificate
// (client.crt/.key) signed by it, and a self-signed "other" CA (other.crt/.key), made with the
// openssl CLI.
struct test_pki {
    std::filesystem::path dir;
    test_pki() {
        char tmpl[] = "/tmp/respite-pki-XXXXXX";
        dir = mkdtemp(tmpl);
        auto d = dir.string();
        std::string script =
            "set -e; cd '" + d +
            "'; "
            "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=respite-test-ca "
            "-keyout ca.key -out ca.crt; "
            "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key "
            "-out server.csr; "
            "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext; "
            "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 "
            "-extfile san.ext -out server.crt; "
            "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=other-ca "
            "-keyout other.key -out other.crt; "
            "openssl req -newkey rsa:2048 -nodes -subj /CN=respite-test-client "
            "-keyout client.key -out client.csr; "
            "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 "
            "-out client.crt";
        std::string cmdline = "sh -c \"" + script + "\" >/dev/null 2>&1";
        if (std::system(cmdline.c_str()) != 0)
            throw std::runtime_error("openssl failed");
    }
    ~test_pki() { std::filesystem::remove_all(dir); }
    std::string file(const char* name) const { return (dir / name).string(); }
};

}  // namespace respite::test
