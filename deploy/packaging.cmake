# Installed files and the Debian package (CPack):
#   cmake --build build --target package   ->  build/promacct_<version>_<arch>.deb
# The package holds the binary, the systemd unit, /etc/default/promacct (a
# conffile), promacct(8) made from the binary's --help, and the rules and
# dashboard under /usr/share/doc/promacct. postinst adds the system user.
set(MAN_OUT ${CMAKE_BINARY_DIR}/man/promacct.8)
add_custom_command(
  OUTPUT ${MAN_OUT} ${MAN_OUT}.gz
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
  COMMAND ${CMAKE_COMMAND} -DPROMACCT=$<TARGET_FILE:promacct>
          -DIN=${CMAKE_SOURCE_DIR}/deploy/man/promacct.8.in
          -DAWK=${CMAKE_SOURCE_DIR}/deploy/man/help2roff.awk -DOUT=${MAN_OUT}
          -DVERSION=${PROJECT_VERSION} -P ${CMAKE_SOURCE_DIR}/deploy/man/manpage.cmake
  DEPENDS promacct ${CMAKE_SOURCE_DIR}/deploy/man/promacct.8.in
          ${CMAKE_SOURCE_DIR}/deploy/man/help2roff.awk ${CMAKE_SOURCE_DIR}/deploy/man/manpage.cmake
  COMMENT "promacct(8)")
add_custom_target(manpage ALL DEPENDS ${MAN_OUT}.gz)

install(FILES ${MAN_OUT}.gz DESTINATION share/man/man8)
install(FILES deploy/systemd/promacct.service DESTINATION lib/systemd/system)
install(FILES deploy/promacct.default DESTINATION /etc/default RENAME promacct)
install(FILES README.md deploy/alerts.yml deploy/recording_rules.yml
              deploy/grafana/promacct.json
        DESTINATION share/doc/promacct)
install(FILES LICENSE DESTINATION share/doc/promacct RENAME copyright)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME promacct)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "promacct maintainers <maintainers@promacct.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "network traffic accounting for Prometheus")
set(CPACK_PACKAGE_DESCRIPTION
    "Captures packets with libpcap and accounts their sizes into Prometheus histograms per interface and per IPv4/IPv6 address of configured ranges; serves /metrics, pushes to a Pushgateway and remote-writes.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd, procps")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/deploy/debian/postinst ${CMAKE_SOURCE_DIR}/deploy/debian/prerm
    ${CMAKE_SOURCE_DIR}/deploy/debian/postrm ${CMAKE_SOURCE_DIR}/deploy/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
