# Writes promacct(8): the template with the OPTIONS section made from the
# built binary's --help (help2roff.awk), so the page lists exactly its flags.
#   cmake -DPROMACCT=bin -DIN=promacct.8.in -DAWK=help2roff.awk -DOUT=promacct.8
#         -DVERSION=x.y.z -P manpage.cmake
# Writes OUT and OUT.gz.
execute_process(COMMAND ${PROMACCT} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROMACCT} --help failed (${rc})")
endif()
file(WRITE ${OUT}.help "${help}")
execute_process(COMMAND awk -f ${AWK} ${OUT}.help OUTPUT_VARIABLE PROMACCT_OPTIONS
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR PROMACCT_OPTIONS STREQUAL "")
  message(FATAL_ERROR "no options from ${PROMACCT} --help")
endif()
string(STRIP "${PROMACCT_OPTIONS}" PROMACCT_OPTIONS)
set(PROMACCT_VERSION ${VERSION})
configure_file(${IN} ${OUT} @ONLY)
execute_process(COMMAND gzip -9 -n -c ${OUT} OUTPUT_FILE ${OUT}.gz RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip failed")
endif()
