# Compile options shared by every udc target: warnings on, optional sanitizers.
add_library(udc_options INTERFACE)
target_compile_options(udc_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow)
if(UDC_SANITIZE)
  target_compile_options(udc_options INTERFACE -fsanitize=address,undefined
                                               -fno-sanitize-recover=undefined
                                               -fno-omit-frame-pointer)
  target_link_options(udc_options INTERFACE -fsanitize=address,undefined)
endif()

# libFuzzer targets (UDC_FUZZ, clang only): every udc library gets coverage instrumentation
# and ASan/UBSan through udc_options, or the fuzzer would be blind inside them.
if(UDC_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "UDC_FUZZ needs clang (configure with CXX=clang++)")
  endif()
  target_compile_options(udc_options INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                                               -fno-sanitize-recover=undefined
                                               -fno-omit-frame-pointer)
  target_link_options(udc_options INTERFACE -fsanitize=address,undefined)
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-resource-dir
                  OUTPUT_VARIABLE UDC_CLANG_RESOURCE_DIR OUTPUT_STRIP_TRAILING_WHITESPACE)
  set(UDC_FUZZER_NO_MAIN
      "${UDC_CLANG_RESOURCE_DIR}/lib/linux/libclang_rt.fuzzer_no_main-${CMAKE_SYSTEM_PROCESSOR}.a")
endif()

# udc_add_fuzzer(NAME SOURCE LIBRARIES...): a libFuzzer executable whose main is
# common/fuzz/fuzz_main.cpp (LLVMFuzzerRunDriver), so that a library defining its own main
# (SystemC's) cannot take the fuzzer's place.
function(udc_add_fuzzer name source)
  add_executable(${name} ${source} ${PROJECT_SOURCE_DIR}/common/fuzz/fuzz_main.cpp)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/common/fuzz)
  target_link_libraries(${name} PRIVATE ${ARGN} udc_options ${UDC_FUZZER_NO_MAIN})
endfunction()
