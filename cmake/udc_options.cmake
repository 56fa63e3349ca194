# Compile options shared by every udc target: warnings on, optional sanitizers.
add_library(udc_options INTERFACE)
target_compile_options(udc_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow)
if(UDC_SANITIZE)
  target_compile_options(udc_options INTERFACE -fsanitize=address,undefined
                                               -fno-sanitize-recover=undefined
                                               -fno-omit-frame-pointer)
  target_link_options(udc_options INTERFACE -fsanitize=address,undefined)
endif()
