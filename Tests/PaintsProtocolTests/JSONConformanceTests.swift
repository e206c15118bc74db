// The strict JSON parser against our own cases in each JSONTestSuite category: y_ accepted with the right value, n_ refused
// with parse_error, i_ answered either way without trapping; plus our policies (duplicate keys, depth, range, encoding).
import Foundation
import PaintsProtocol
import Testing

@Suite struct JSONConformanceTests {
    // MARK: helpers

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// The parse of `input`: the value, or the error.
    static func parse(_ input: [UInt8]) -> Result<JSONValue, ProtocolError> {
        do throws(ProtocolError) { return .success(try JSONValue.parse(Data(input))) } catch { return .failure(error) }
    }

    func expectAccepted(_ name: String, _ input: [UInt8], _ expected: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) {
        switch Self.parse(input) {
        case .success(let value):
            #expect(value == expected, "\(name): got \(value.serializedString())", sourceLocation: sourceLocation)
        case .failure(let error):
            Issue.record("\(name): refused: \(error.message)", sourceLocation: sourceLocation)
        }
    }

    func expectAccepted(_ name: String, _ text: String, _ expected: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) {
        expectAccepted(name, Self.bytes(text), expected, sourceLocation: sourceLocation)
    }

    /// Refused with `parse_error`; returns the error for further checks.
    @discardableResult
    func expectRefused(_ name: String, _ input: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> ProtocolError? {
        switch Self.parse(input) {
        case .success(let value):
            Issue.record("\(name): accepted as \(value.serializedString())", sourceLocation: sourceLocation)
            return nil
        case .failure(let error):
            #expect(error.code == .parseError, "\(name)", sourceLocation: sourceLocation)
            #expect(error.message.hasPrefix("frame 0 is not valid JSON: "), "\(name): \(error.message)", sourceLocation: sourceLocation)
            #expect(error.message.range(of: #" at byte \d+$"#, options: .regularExpression) != nil, "\(name): \(error.message)",
                    sourceLocation: sourceLocation)
            #expect(error.details["offset"]?.intValue != nil, "\(name)", sourceLocation: sourceLocation)
            return error
        }
    }

    @discardableResult
    func expectRefused(_ name: String, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> ProtocolError? {
        expectRefused(name, Self.bytes(text), sourceLocation: sourceLocation)
    }

    /// `[` `bytes` `]` as a JSON string inside an array: `["<bytes>"]`.
    static func inString(_ raw: [UInt8]) -> [UInt8] { bytes("[\"") + raw + bytes("\"]") }

    // MARK: y_ (must accept, with the right value)

    @Test func acceptsStructures() {
        expectAccepted("y_structure_lonely_false", "false", false)
        expectAccepted("y_structure_lonely_true", "true", true)
        expectAccepted("y_structure_lonely_null", "null", .null)
        expectAccepted("y_structure_lonely_int", "42", 42)
        expectAccepted("y_structure_lonely_negative_real", "-0.1", -0.1)
        expectAccepted("y_structure_lonely_string", #""asd""#, "asd")
        expectAccepted("y_structure_string_empty", #""""#, "")
        expectAccepted("y_structure_trailing_newline", "[\"a\"]\n", ["a"])
        expectAccepted("y_structure_true_in_array", "[true]", [true])
        expectAccepted("y_structure_whitespace_array", " [] ", [])
        expectAccepted("all four whitespace characters", " \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n[ \t\r\n1 \t\r\n, \t\r\n2 \t\r\n] \t\r\n} \t\r\n",
                       ["a": [1, 2]])
    }

    @Test func acceptsArrays() {
        expectAccepted("y_array_arraysWithSpaces", "[[]   ]", [[]])
        expectAccepted("y_array_empty", "[]", [])
        expectAccepted("y_array_empty-string", #"[""]"#, [""])
        expectAccepted("y_array_ending_with_newline", "[\"a\"]", ["a"])
        expectAccepted("y_array_false", "[false]", [false])
        expectAccepted("y_array_heterogeneous", #"[null, 1, "1", {}]"#, [.null, 1, "1", .object([:])])
        expectAccepted("y_array_null", "[null]", [.null])
        expectAccepted("y_array_with_1_and_newline", "[1\n]", [1])
        expectAccepted("y_array_with_leading_space", " [1]", [1])
        expectAccepted("y_array_with_several_null", "[1,null,null,null,2]", [1, .null, .null, .null, 2])
        expectAccepted("y_array_with_trailing_space", "[2] ", [2])
        expectAccepted("nested", "[[[[\"deep\"]]], [], [{}]]", [[[["deep"]]], [], [.object([:])]])
    }

    @Test func acceptsObjects() {
        expectAccepted("y_object", #"{"asd":"sdf", "dfg":"fgh"}"#, ["asd": "sdf", "dfg": "fgh"])
        expectAccepted("y_object_basic", #"{"asd":"sdf"}"#, ["asd": "sdf"])
        expectAccepted("y_object_empty", "{}", .object([:]))
        expectAccepted("y_object_empty_key", #"{"":0}"#, ["": 0])
        expectAccepted("y_object_escaped_null_in_key", #"{"foo\u0000bar": 42}"#, ["foo\u{0}bar": 42])
        expectAccepted("y_object_extreme_numbers", #"{ "min": -1.0e+28, "max": 1.0e+28 }"#, ["min": -1.0e28, "max": 1.0e28])
        expectAccepted("y_object_simple", #"{"a":[]}"#, ["a": []])
        expectAccepted("y_object_string_unicode",
                       #"{"title":"\u041f\u043e\u043b\u0442\u043e\u0440\u0430 \u0417\u0435\u043c\u043b\u0435\u043a\u043e\u043f\u0430" }"#,
                       ["title": "Полтора Землекопа"])
        expectAccepted("y_object_with_newlines", "{\n\"a\": \"b\"\n}", ["a": "b"])
        expectAccepted("keys differing only in escapes are different", #"{"a\"":1,"a\\":2}"#, ["a\"": 1, "a\\": 2])
        expectAccepted("a request header", #"{"id":"a","method":"ping","params":{}}"#, ["id": "a", "method": "ping", "params": .object([:])])
    }

    @Test func acceptsNumbers() {
        expectAccepted("y_number", "[123e65]", [123e65])
        expectAccepted("y_number_0e+1", "[0e+1]", [0])
        expectAccepted("y_number_0e1", "[0e1]", [0])
        expectAccepted("y_number_after_space", "[ 4]", [4])
        expectAccepted("y_number_double_close_to_zero", "[-0." + String(repeating: "0", count: 80) + "1]", [-1e-81])
        expectAccepted("y_number_int_with_exp", "[20e1]", [200])
        expectAccepted("y_number_minus_zero", "[-0]", [0])
        expectAccepted("y_number_negative_int", "[-123]", [-123])
        expectAccepted("y_number_negative_one", "[-1]", [-1])
        expectAccepted("y_number_real_capital_e", "[1E22]", [1e22])
        expectAccepted("y_number_real_capital_e_neg_exp", "[1E-2]", [0.01])
        expectAccepted("y_number_real_capital_e_pos_exp", "[1E+2]", [100])
        expectAccepted("y_number_real_exponent", "[123e45]", [123e45])
        expectAccepted("y_number_real_fraction_exponent", "[123.456e78]", [123.456e78])
        expectAccepted("y_number_real_neg_exp", "[1e-2]", [0.01])
        expectAccepted("y_number_real_pos_exponent", "[1e+2]", [100])
        expectAccepted("y_number_simple_int", "[123]", [123])
        expectAccepted("y_number_simple_real", "[123.456789]", [123.456789])
        expectAccepted("exponent with leading zeros", "[1e007]", [1e7])
        expectAccepted("fifteen digits", "[999999999999999]", [999_999_999_999_999])
        expectAccepted("sixteen digits, rounded to even", "[9007199254740993]", [9_007_199_254_740_992])
        expectAccepted("largest double", "[1.7976931348623157e308]", [.number(Double.greatestFiniteMagnitude)])
        expectAccepted("smallest subnormal", "[5e-324]", [.number(Double.leastNonzeroMagnitude)])
        expectAccepted("underflow to zero", "[1e-400]", [0])
        // -0 is read as negative zero.
        if case .success(.array(let items)) = Self.parse(Self.bytes("[-0]")), case .number(let x)? = items.first {
            #expect(x == 0 && x.sign == .minus)
        } else {
            Issue.record("[-0] not read")
        }
    }

    @Test func acceptsStringsAndEscapes() {
        expectAccepted("y_string_1_2_3_bytes_UTF-8_sequences", #"["\u0060\u012a\u12AB"]"#, ["`\u{12A}\u{12AB}"])
        expectAccepted("y_string_accepted_surrogate_pair", #"["\uD801\udc37"]"#, ["\u{10437}"])
        expectAccepted("y_string_accepted_surrogate_pairs", #"["\ud83d\ude39\ud83d\udc8d"]"#, ["\u{1F639}\u{1F48D}"])
        expectAccepted("y_string_allowed_escapes", #"["\"\\\/\b\f\n\r\t"]"#, ["\"\\/\u{8}\u{C}\n\r\t"])
        expectAccepted("y_string_backslash_and_u_escaped_zero", #"["\\u0000"]"#, ["\\u0000"])
        expectAccepted("y_string_backslash_doublequotes", #"["\""]"#, ["\""])
        expectAccepted("y_string_comments", #"["a/*b*/c/*d//e"]"#, ["a/*b*/c/*d//e"])
        expectAccepted("y_string_double_escape_a", #"["\\a"]"#, ["\\a"])
        expectAccepted("y_string_double_escape_n", #"["\\n"]"#, ["\\n"])
        expectAccepted("y_string_escaped_control_character", #"["\u0012"]"#, ["\u{12}"])
        expectAccepted("y_string_escaped_noncharacter", #"["\uFFFF"]"#, ["\u{FFFF}"])
        expectAccepted("y_string_in_array", #"["asd"]"#, ["asd"])
        expectAccepted("y_string_in_array_with_leading_space", #"[ "asd"]"#, ["asd"])
        expectAccepted("y_string_last_surrogates_1_and_2", #"["\uDBFF\uDFFF"]"#, ["\u{10FFFF}"])
        expectAccepted("y_string_nbsp_uescaped", #"["new\u00A0line"]"#, ["new\u{A0}line"])
        expectAccepted("y_string_nonCharacterInUTF-8_U+10FFFF", Self.inString([0xF4, 0x8F, 0xBF, 0xBF]), ["\u{10FFFF}"])
        expectAccepted("y_string_nonCharacterInUTF-8_U+FFFF", Self.inString([0xEF, 0xBF, 0xBF]), ["\u{FFFF}"])
        expectAccepted("y_string_null_escape", #"["\u0000"]"#, ["\u{0}"])
        expectAccepted("y_string_one-byte-utf-8", #"["\u002c"]"#, [","])
        expectAccepted("y_string_pi", Self.inString([0xCF, 0x80]), ["\u{3C0}"])
        expectAccepted("y_string_reservedCharacterInUTF-8_U+1BFFF", Self.inString([0xF0, 0x9B, 0xBF, 0xBF]), ["\u{1BFFF}"])
        expectAccepted("y_string_simple_ascii", #"["asd "]"#, ["asd "])
        expectAccepted("y_string_space", #"" ""#, " ")
        expectAccepted("y_string_surrogates_U+1D11E_MUSICAL_SYMBOL_G_CLEF", #"["\uD834\uDd1e"]"#, ["\u{1D11E}"])
        expectAccepted("y_string_three-byte-utf-8", #"["\u0821"]"#, ["\u{821}"])
        expectAccepted("y_string_two-byte-utf-8", #"["\u0123"]"#, ["\u{123}"])
        expectAccepted("y_string_u+2028_line_sep", Self.inString([0xE2, 0x80, 0xA8]), ["\u{2028}"])
        expectAccepted("y_string_u+2029_par_sep", Self.inString([0xE2, 0x80, 0xA9]), ["\u{2029}"])
        expectAccepted("y_string_uEscape", #"["\u0061\u30af\u30EA\u30b9"]"#, ["a\u{30AF}\u{30EA}\u{30B9}"])
        expectAccepted("y_string_uescaped_newline", #"["new\u000Aline"]"#, ["new\nline"])
        expectAccepted("y_string_unescaped_char_delete", Self.inString([0x7F]), ["\u{7F}"])
        expectAccepted("y_string_unicode_U+FDD0_nonchar", #"["\uFDD0"]"#, [.string(String(Unicode.Scalar(0xFDD0)!))])
        expectAccepted("y_string_unicode_escaped_double_quote", #"["\u0022"]"#, ["\""])
        expectAccepted("y_string_utf8", Self.inString([0xE2, 0x82, 0xAC, 0xF0, 0x9D, 0x84, 0x9E]), ["\u{20AC}\u{1D11E}"])
        expectAccepted("y_string_with_del_character", Self.inString([0x61, 0x7F, 0x61]), ["a\u{7F}a"])
        expectAccepted("escapes between plain runs", #"["ab\ncd\u00e9ef\"gh"]"#, ["ab\ncd\u{E9}ef\"gh"])
        expectAccepted("highest 2, 3 and 4 byte boundaries",
                       Self.inString([0xC2, 0x80, 0xDF, 0xBF, 0xE0, 0xA0, 0x80, 0xED, 0x9F, 0xBF, 0xEE, 0x80, 0x80, 0xF0, 0x90, 0x80, 0x80]),
                       ["\u{80}\u{7FF}\u{800}\u{D7FF}\u{E000}\u{10000}"])
    }

    // MARK: n_ (must refuse with parse_error)

    @Test func refusesBadStructure() {
        for (name, text) in [
            ("n_structure_no_data", ""), ("only whitespace", " \n\t "), ("n_structure_angle_bracket_.", "<.>"),
            ("n_structure_angle_bracket_null", "[<null>]"), ("n_structure_array_trailing_garbage", "[1]x"),
            ("n_structure_array_with_extra_array_close", "[1]]"), ("n_structure_array_with_unclosed_string", #"["asd]"#),
            ("n_structure_capitalized_True", "[True]"), ("n_structure_close_unopened_array", "1]"),
            ("n_structure_comma_instead_of_closing_brace", #"{"x": true,"#), ("n_structure_double_array", "[][]"),
            ("n_structure_end_array", "]"), ("n_structure_lone-open-bracket", "["), ("n_structure_number_with_trailing_garbage", "2@"),
            ("n_structure_object_followed_by_closing_object", "{}}"), ("n_structure_object_unclosed_no_value", #"{"":"#),
            ("n_structure_object_with_comment", #"{"a":/*comment*/"b"}"#), ("n_structure_object_with_trailing_garbage", #"{"a": true} "x""#),
            ("n_structure_open_array_apostrophe", "['"), ("n_structure_open_array_comma", "[,"),
            ("n_structure_open_array_open_object", "[{"), ("n_structure_open_array_open_string", #"["a"#),
            ("n_structure_open_array_string", #"["a""#), ("n_structure_open_object", "{"), ("n_structure_open_object_close_array", "{]"),
            ("n_structure_open_object_comma", "{,"), ("n_structure_open_object_open_array", "{["),
            ("n_structure_open_object_open_string", #"{"a"#), ("n_structure_open_object_string_with_apostrophes", "{'a'"),
            ("n_structure_single_star", "*"), ("n_structure_trailing_#", #"{"a":"b"}#{}"#),
            ("n_structure_unclosed_array", "[1"), ("n_structure_unclosed_array_partial_null", "[ false, nul"),
            ("n_structure_unclosed_array_unfinished_false", "[ true, fals"), ("n_structure_unclosed_array_unfinished_true", "[ false, tru"),
            ("n_structure_unclosed_object", #"{"asd":"asd""#), ("n_structure_uescaped_LF_before_string", #"[\u000A""]"#),
            ("n_structure_whitespace_formfeed", "[\u{0C}]"), ("vertical tab is not whitespace", "[\u{0B}1]"),
            ("n_structure_ascii-unicode-identifier", "a\u{E5}"), ("n_structure_unicode-identifier", "\u{E5}"),
            ("n_structure_U+2060_word_joined", "[\u{2060}]"), ("no-break space is not whitespace", "[\u{A0}1]"),
            ("n_single_space_then_garbage", " x"), ("two values", "1 2"), ("n_structure_null-byte-outside-string", "[\u{0}]"),
            ("literal prefix", "nul"), ("literal with extra letters", "nulll"), ("literals run together", "truefalse"),
            ("capital NULL", "NULL"), ("undefined", "undefined"),
        ] {
            expectRefused(name, text)
        }
        expectRefused("n_structure_lone-invalid-utf-8", [0xE5])
        expectRefused("n_structure_single_eacute", [0xE9])
        expectRefused("n_structure_incomplete_UTF8_BOM", [0xEF, 0xBB, 0x7B, 0x7D])
        expectRefused("n_structure_UTF8_BOM_no_data", [0xEF, 0xBB, 0xBF])
        expectRefused("n_structure_whitespace_U+2060_word_joiner", Self.bytes("[") + [0xE2, 0x81, 0xA0] + Self.bytes("]"))
        expectRefused("NUL after the value", Self.bytes("{}") + [0])
    }

    @Test func refusesBadArrays() {
        for (name, text) in [
            ("n_array_1_true_without_comma", "[1 true]"), ("n_array_colon_instead_of_comma", #"["": 1]"#),
            ("n_array_comma_after_close", #"[""],"#), ("n_array_comma_and_number", "[,1]"), ("n_array_double_comma", "[1,,2]"),
            ("n_array_double_extra_comma", #"["x",,]"#), ("n_array_extra_close", #"["x"]]"#), ("n_array_extra_comma", #"["",]"#),
            ("n_array_incomplete", #"["x""#), ("n_array_incomplete_invalid_value", "[x"), ("n_array_inner_array_no_comma", "[3[4]]"),
            ("n_array_items_separated_by_semicolon", "[1:2]"), ("n_array_just_comma", "[,]"), ("n_array_just_minus", "[-]"),
            ("n_array_missing_value", #"[   , ""]"#), ("n_array_newlines_unclosed", "[\"a\",\n4\n,1,"),
            ("n_array_number_and_comma", "[1,]"), ("n_array_number_and_several_commas", "[1,,]"), ("n_array_star_inside", "[*]"),
            ("n_array_unclosed", #"[""#), ("n_array_unclosed_trailing_comma", "[1,"), ("n_array_unclosed_with_new_lines", "[1,\n1\n,1"),
            ("n_array_unclosed_with_object_inside", "[{}"), ("trailing comma with whitespace", "[1 , \n]"),
            ("n_array_spaces_vertical_tab_formfeed", "[\"\u{0B}a\"\\f]"),
        ] {
            expectRefused(name, text)
        }
        expectRefused("n_array_a_invalid_utf8", Self.bytes("[a") + [0xE5] + Self.bytes("]"))
        expectRefused("n_array_invalid_utf8", Self.bytes("[") + [0xFF] + Self.bytes("]"))
    }

    @Test func refusesBadObjects() {
        for (name, text) in [
            ("n_object_bad_value", #"["x", truth]"#), ("n_object_bracket_key", #"{[: "x"}"#), ("n_object_comma_instead_of_colon", #"{"x", null}"#),
            ("n_object_double_colon", #"{"x"::"b"}"#), ("n_object_emoji", "{\u{1F1E8}\u{1F1ED}}"), ("n_object_garbage_at_end", #"{"a":"a" 123}"#),
            ("n_object_key_with_single_quotes", "{key: 'value'}"), ("n_object_missing_colon", #"{"a" b}"#), ("n_object_missing_key", #"{:"b"}"#),
            ("n_object_missing_semicolon", #"{"a" "b"}"#), ("n_object_missing_value", #"{"a":"#), ("n_object_no-colon", #"{"a""#),
            ("n_object_non_string_key", "{1:1}"), ("n_object_non_string_key_but_huge_number_instead", "{9999E9999:1}"),
            ("n_object_repeated_null_null", "{null:null,null:null}"), ("n_object_several_trailing_commas", #"{"id":0,,,,,}"#),
            ("n_object_single_quote", "{'a':0}"), ("n_object_trailing_comma", #"{"id":0,}"#), ("n_object_trailing_comment", #"{"a":"b"}/**/"#),
            ("n_object_trailing_comment_open", #"{"a":"b"}/**//"#), ("n_object_trailing_comment_slash_open", #"{"a":"b"}//"#),
            ("n_object_trailing_comment_slash_open_incomplete", #"{"a":"b"}/"#), ("n_object_two_commas_in_a_row", #"{"a":"b",,"c":"d"}"#),
            ("n_object_unquoted_key", #"{a: "b"}"#), ("n_object_unterminated-value", #"{"a":"a"#),
            ("n_object_with_single_string", #"{ "foo" : "bar", "a" }"#), ("n_object_with_trailing_garbage", #"{"a":"b"}#"#),
            ("the issue's trailing comma", #"{"id":"a","method":"ping",}"#), ("comma before first member", #"{,"a":1}"#),
        ] {
            expectRefused(name, text)
        }
        expectRefused("n_object_lone_continuation_byte_in_key_and_trailing_comma", Self.bytes("{\"") + [0xB9] + Self.bytes("\":\"0\",}"))
    }

    @Test func refusesBadNumbers() {
        for text in [
            "[++1234]", "[+1]", "[+Inf]", "[-01]", "[-1.0.]", "[-2.]", "[-NaN]", "[.-1]", "[.2e-3]", "[0.1.2]", "[0.3e+]", "[0.3e]",
            "[0.e1]", "[0E+]", "[0E]", "[0e+]", "[0e]", "[1.0e+]", "[1.0e-]", "[1.0e]", "[1 000.0]", "[1eE2]", "[2.e+3]", "[2.e-3]",
            "[2.e3]", "[9.e+]", "[Inf]", "[NaN]", "[\u{FF11}]", "[1+2]", "[0x1]", "[0x42]", "[Infinity]", "[0e+-1]", "[-Infinity]",
            "[1.2a-3]", "[-foo]", "[- 1]", "[-012]", "[-.123]", "[-1x]", "[1ea]", "[1.]", "[012]", "[.123]", "[00]", "[-00]",
            "[1.8011670033376514H-308]", "[0.e]", "[1e]", "[1E]", "[1e+]", "[-]", "-", "0.", "01", "[1_000]", "[1,000]",
        ] {
            expectRefused("n_number \(text)", text)
        }
        expectRefused("n_number_invalid-utf-8-in-exponent", Self.bytes("[1e1") + [0xE5] + Self.bytes("]"))
        expectRefused("n_number_invalid-utf-8-in-int", Self.bytes("[0") + [0xE5] + Self.bytes("]"))
        expectRefused("n_number_real_with_invalid_utf8_after_e", Self.bytes("[1e") + [0xE5] + Self.bytes("]"))
    }

    @Test func refusesBadStringsAndEscapes() {
        for (name, text) in [
            ("n_string_1_surrogate_then_escape", #"["\uD800\"]"#), ("n_string_1_surrogate_then_escape_u", #"["\uD800\u"]"#),
            ("n_string_1_surrogate_then_escape_u1", #"["\uD800\u1"]"#), ("n_string_1_surrogate_then_escape_u1x", #"["\uD800\u1x"]"#),
            ("n_string_accentuated_char_no_quotes", "[\u{E9}]"), ("n_string_backslash_00", "[\"\\\u{0}\"]"),
            ("n_string_escape_x", #"["\x00"]"#), ("n_string_escaped_backslash_bad", #"["\\\"]"#), ("n_string_escaped_ctrl_char_tab", "[\"\\\t\"]"),
            ("n_string_escaped_emoji", "[\"\\\u{1F300}\"]"), ("n_string_incomplete_escape", #"["\"]"#),
            ("n_string_incomplete_escaped_character", #"["\u00A"]"#), ("n_string_incomplete_surrogate", #"["\uD834\uDd"]"#),
            ("n_string_incomplete_surrogate_escape_invalid", #"["\uD800\uD800\x"]"#), ("n_string_invalid_backslash_esc", #"["\a"]"#),
            ("n_string_invalid_unicode_escape", #"["\uqqqq"]"#), ("n_string_leading_uescaped_thinspace", #"[\u0020"asd"]"#),
            ("n_string_no_quotes_with_bad_escape", #"[\n]"#), ("n_string_single_doublequote", "\""),
            ("n_string_single_quote", "['single quote']"), ("n_string_single_string_no_double_quotes", "abc"),
            ("n_string_start_escape_unclosed", #"["\"#), ("n_string_unescaped_ctrl_char", "[\"a\u{0}a\"]"),
            ("n_string_unescaped_newline", "[\"new\nline\"]"), ("n_string_unescaped_tab", "[\"\t\"]"),
            ("n_string_unicode_CapitalU", #""\UA66D""#), ("n_string_with_trailing_garbage", #"""x"#),
            ("unescaped carriage return", "[\"a\rb\"]"), ("unescaped U+001F", "[\"\u{1F}\"]"), ("escaped apostrophe", #"["\'"]"#),
            ("uppercase escape", #"["\N"]"#), ("\\u with three digits then quote", #"["\u123"]"#), ("\\u with a sign", #"["\u+123"]"#),
        ] {
            expectRefused(name, text)
        }
        expectRefused("n_string_invalid_utf8_after_escape", Self.bytes("[\"\\") + [0xE5] + Self.bytes("\"]"))
        expectRefused("n_string_invalid-utf-8-in-escape", Self.bytes("[\"\\u") + [0xE5] + Self.bytes("\"]"))
        // A control character names itself in the message.
        let tab = expectRefused("unescaped tab", "[\"\t\"]")
        #expect(tab?.message == "frame 0 is not valid JSON: control character U+0009 in a string (it must be escaped) at byte 2")
    }

    // MARK: our policies on what JSONTestSuite leaves to implementations (i_ cases we decided)

    @Test func refusesInvalidUTF8() {
        let cases: [(String, [UInt8])] = [
            ("i_string_invalid_utf-8", [0xFF]), ("i_string_lone_utf8_continuation_byte", [0x81]),
            ("i_string_overlong_sequence_2_bytes", [0xC0, 0xAF]), ("overlong NUL", [0xC0, 0x80]), ("overlong C1", [0xC1, 0xBF]),
            ("i_string_overlong_sequence_6_bytes", [0xFC, 0x83, 0xBF, 0xBF, 0xBF, 0xBF]),
            ("i_string_overlong_sequence_6_bytes_null", [0xFC, 0x80, 0x80, 0x80, 0x80, 0x80]),
            ("overlong 3 bytes", [0xE0, 0x80, 0xAF]), ("overlong 3 bytes (U+07FF)", [0xE0, 0x9F, 0xBF]),
            ("overlong 4 bytes", [0xF0, 0x80, 0x80, 0xAF]), ("overlong 4 bytes (U+FFFF)", [0xF0, 0x8F, 0xBF, 0xBF]),
            ("i_string_truncated-utf-8", [0xE0, 0xFF]), ("i_string_UTF-8_invalid_sequence", [0xE6, 0x97, 0xA5, 0xD1, 0x88, 0xFA]),
            ("i_string_UTF8_surrogate_U+D800", [0xED, 0xA0, 0x80]), ("surrogate U+DFFF in UTF-8", [0xED, 0xBF, 0xBF]),
            ("surrogate pair in UTF-8 (CESU-8)", [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]),
            ("i_string_not_in_unicode_range", [0xF4, 0xBF, 0xBF, 0xBF]), ("U+110000", [0xF4, 0x90, 0x80, 0x80]),
            ("byte F5", [0xF5, 0x80, 0x80, 0x80]), ("byte F8", [0xF8, 0x88, 0x80, 0x80, 0x80]), ("byte FE", [0xFE]),
            ("i_string_iso_latin_1", [0xE9]), ("2-byte lead then ASCII", [0xC3, 0x41]), ("3-byte sequence cut after 2", [0xE2, 0x82]),
            ("4-byte sequence cut after 3", [0xF0, 0x9F, 0x98]), ("continuation byte after a complete sequence", [0xC3, 0xA9, 0xA9]),
        ]
        for (name, raw) in cases {
            let error = expectRefused(name, Self.inString(raw))
            #expect(error?.message.contains("invalid UTF-8") == true, "\(name): \(error?.message ?? "")")
        }
        // Truncated at the very end of the input (no closing quote after it).
        expectRefused("truncated at end of input", Self.bytes("[\"") + [0xE2, 0x82])
        // The offset is that of the bad sequence's first byte: `["`, `é` at 2 and 3, then a lone continuation byte at 4.
        let offset = expectRefused("offset", Self.bytes("[\"") + [0xC3, 0xA9, 0x80] + Self.bytes("\"]"))
        #expect(offset?.details["offset"] == 4)
        let surrogate = expectRefused("surrogate message", Self.inString([0xED, 0xA0, 0x80]))
        #expect(surrogate?.message.contains("surrogate") == true)
    }

    @Test func refusesLoneSurrogateEscapes() {
        for (name, text) in [
            ("i_string_1st_surrogate_but_2nd_missing", #"["\uDADA"]"#), ("i_string_1st_valid_surrogate_2nd_invalid", #"["\uD888\u1234"]"#),
            ("i_string_incomplete_surrogate_and_escape_valid", #"["\uD800\n"]"#), ("i_string_incomplete_surrogate_pair", #"["\uDd1ea"]"#),
            ("i_string_incomplete_surrogates_escape_valid", #"["\uD800\uD800\n"]"#), ("i_string_inverted_surrogates_U+1D11E", #"["\uDd1e\uD834"]"#),
            ("i_string_lone_second_surrogate", #"["\uDFAA"]"#), ("i_object_key_lone_2nd_surrogate", #"{"\uDFAA":0}"#),
            ("i_string_invalid_lonely_surrogate", #"["\ud800"]"#), ("i_string_invalid_surrogate", #"["\ud800abc"]"#),
            ("high surrogate at the end of the string", #""\uDBFF""#), ("two high surrogates", #"["\uD800\uDBFF"]"#),
        ] {
            let error = expectRefused(name, text)
            #expect(error?.message.contains("lone surrogate") == true, "\(name): \(error?.message ?? "")")
            #expect(error?.message.contains("cannot hold it") == true, "\(name)")
        }
        let exact = expectRefused("message", #"["ab\uDC00"]"#)
        #expect(exact?.details["offset"] == 4)
    }

    @Test func refusesNumbersOutOfRangeAndAcceptsUnderflow() {
        for (name, text) in [
            ("the issue's 1e400", "1e400"), ("i_number_huge_exp", "[0.4e00669999999999999999999999999999999999999999999999999999999999999999999999999999999999969999999006]"),
            ("i_number_neg_int_huge_exp", "[-1e+9999]"), ("i_number_pos_double_huge_exp", "[1.5e+9999]"),
            ("i_number_real_neg_overflow", "[-123123e100000]"), ("i_number_real_pos_overflow", "[123123e100000]"),
            ("just over the largest double", "[1.7976931348623159e308]"), ("a 400-digit integer", "[1" + String(repeating: "0", count: 400) + "]"),
            ("in an object", #"{"seed":1e999}"#),
        ] {
            let error = expectRefused(name, text)
            #expect(error?.message.contains("number out of range") == true, "\(name): \(error?.message ?? "")")
        }
        let exact = expectRefused("offset of the number", #"{"seed":-1e999}"#)
        #expect(exact?.details["offset"] == 8)
        expectAccepted("i_number_double_huge_neg_exp", "[123.456e-789]", [0])
        expectAccepted("i_number_real_underflow", "[123e-10000000]", [0])
        expectAccepted("i_number_too_big_neg_int", "[-123123123123123123123123123123]", [-123123123123123123123123123123.0])
        expectAccepted("i_number_too_big_pos_int", "[100000000000000000000]", [1e20])
        expectAccepted("i_number_very_big_negative_int", "[-237462374673276894279832749832423479823246327846]",
                       [-237462374673276894279832749832423479823246327846.0])
        expectAccepted("the issue's [0e1]", "[0e1]", [0])
    }

    @Test func refusesDuplicateKeys() {
        let error = expectRefused("the issue's duplicate method", #"{"method":"ping","method":"shutdown"}"#)
        #expect(error?.message == #"frame 0 is not valid JSON: duplicate key "method" at byte 17"#)
        expectRefused("y_object_duplicated_key (refused by our policy)", #"{"a":"b","a":"c"}"#)
        expectRefused("y_object_duplicated_key_and_value (refused by our policy)", #"{"a":"b","a":"b"}"#)
        expectRefused("duplicate spelled with an escape", #"{"a":1,"\u0061":2}"#)
        expectRefused("duplicate in a nested object", #"{"params":{"seed":1,"x":2,"seed":3}}"#)
        expectRefused("duplicate empty key", #"{"":1,"":2}"#)
        // The same key in different objects is fine.
        expectAccepted("same key in sibling objects", #"[{"a":1},{"a":2}]"#, [["a": 1], ["a": 2]])
        expectAccepted("same key nested", #"{"a":{"a":1}}"#, ["a": ["a": 1]])
    }

    @Test func limitsNestingDepth() throws {
        #expect(JSONValue.maxNestingDepth == 64)
        func arrays(_ n: Int) -> String { String(repeating: "[", count: n) + String(repeating: "]", count: n) }
        func objects(_ n: Int) -> String { String(repeating: #"{"a":"#, count: n) + "1" + String(repeating: "}", count: n) }
        var expected: JSONValue = []
        for _ in 1..<64 { expected = [expected] }
        expectAccepted("64 nested arrays", arrays(64), expected)
        var expectedObject: JSONValue = 1
        for _ in 0..<64 { expectedObject = ["a": expectedObject] }
        expectAccepted("64 nested objects", objects(64), expectedObject)
        let deep = expectRefused("65 nested arrays", arrays(65))
        #expect(deep?.message == "frame 0 is not valid JSON: arrays and objects nested deeper than 64 levels at byte 64")
        expectRefused("65 nested objects", objects(65))
        let mixed64 = String(repeating: #"[{"a":"#, count: 32) + "1" + String(repeating: "}]", count: 32)
        #expect((try? Self.parse(Self.bytes(mixed64)).get()) != nil, "64 levels, arrays and objects mixed")
        expectRefused("65 levels, arrays and objects mixed", String(repeating: #"[{"a":"#, count: 32) + "[1]" + String(repeating: "}]", count: 32))
        // Depth counts open containers, not all containers seen: siblings at depth 64 are fine.
        let deep63 = try #require(expected.arrayValue?.first)
        expectAccepted("siblings at the limit", "[" + arrays(63) + "," + arrays(63) + "]", [deep63, deep63])
        // i_structure_500_nested_arrays and n_structure_100000_opening_arrays: refused where the 65th level opens, without
        // reading (or recursing into) the rest.
        for n in [500, 10_000, 100_000] {
            let error = expectRefused("\(n) nested arrays", arrays(n))
            #expect(error?.details["offset"] == 64)
        }
        let unclosed = expectRefused("n_structure_open_array_object", String(repeating: #"[{"":"#, count: 50_000))
        #expect(unclosed?.details["offset"] == 160)  // the 33rd `[{"":`, which opens level 65
        let objectsDeep = expectRefused("open objects", String(repeating: #"{"a":"#, count: 100))
        #expect(objectsDeep?.details["offset"] == 320)  // the 65th `{"a":`
    }

    @Test func refusesByteOrderMarksAndUTF16() {
        let header = #"{"id":"a","method":"ping"}"#
        let bom = expectRefused("i_structure_UTF-8_BOM_empty_object", [0xEF, 0xBB, 0xBF] + Self.bytes("{}"))
        #expect(bom?.message.contains("byte order mark") == true)
        expectRefused("UTF-8 BOM before a header", [0xEF, 0xBB, 0xBF] + Self.bytes(header))
        expectRefused("BOM after whitespace", Self.bytes(" ") + [0xEF, 0xBB, 0xBF] + Self.bytes("{}"))
        expectRefused("BOM inside an array", Self.bytes("[") + [0xEF, 0xBB, 0xBF] + Self.bytes("1]"))
        let le = Array(header.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let be = Array(header.utf16).flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        let withBOM = expectRefused("i_string_UTF-16LE_with_BOM", [0xFF, 0xFE] + le)
        #expect(withBOM?.message.contains("UTF-16") == true)
        expectRefused("UTF-16BE with BOM", [0xFE, 0xFF] + be)
        let noBOM = expectRefused("i_string_utf16LE_no_BOM", le)
        #expect(noBOM?.message.contains("UTF-8") == true, "\(noBOM?.message ?? "")")
        expectRefused("i_string_utf16BE_no_BOM", be)
        let utf32 = Array(header.unicodeScalars).flatMap { s -> [UInt8] in [UInt8(s.value & 0xFF), 0, 0, 0] }
        expectRefused("UTF-32LE", utf32)
    }

    @Test func errorMessagesSayWhatAndWhere() {
        let trailing = expectRefused("the issue's trailing comma", #"{"id":"a","method":"ping",}"#)
        #expect(trailing?.message == "frame 0 is not valid JSON: trailing comma before '}' at byte 25")
        #expect(trailing?.details["offset"] == 25)
        let arrayComma = expectRefused("array trailing comma", "[1,2,]")
        #expect(arrayComma?.message == "frame 0 is not valid JSON: trailing comma before ']' at byte 4")
        let zeros = expectRefused("leading zero", #"{"seed": 007}"#)
        #expect(zeros?.message == "frame 0 is not valid JSON: a number may not have leading zeros at byte 9")
        let garbage = expectRefused("after the value", "{} x")
        #expect(garbage?.message == "frame 0 is not valid JSON: unexpected character 'x' after the JSON value at byte 3")
        let empty = expectRefused("empty", "")
        #expect(empty?.message == "frame 0 is not valid JSON: empty input at byte 0")
        let escape = expectRefused("bad escape", #"["\q"]"#)
        #expect(escape?.details["offset"] == 2)
        let unterminated = expectRefused("unterminated", #"{"a":"b"#)
        #expect(unterminated?.message.contains("unterminated string") == true)
    }

    // MARK: i_ (either answer, but no trap and no other error code)

    @Test func implementationDefinedCasesDoNotTrap() {
        var cases: [[UInt8]] = [
            "[123.456e-789]", "[0.4e00669999999999999999999999999999999999999999999999999999999999999999999999999999999969999999006]",
            "[-1e+9999]", "[1.5e+9999]", "[-123123e100000]", "[123123e100000]", "[123e-10000000]", "[-123123123123123123123123123123]",
            "[100000000000000000000]", "[-237462374673276894279832749832423479823246327846]", #"{"\uDFAA":0}"#, #"["\uDADA"]"#,
            #"["\uD888\u1234"]"#, #"["\uD800\n"]"#, #"["\uDd1ea"]"#, #"["\uD800\uD800\n"]"#, #"["\ud800"]"#, #"["\ud800abc"]"#,
            #"["\uDd1e\uD834"]"#, #"["\uDFAA"]"#, String(repeating: "[", count: 500) + String(repeating: "]", count: 500),
            #"{"a":1,"a":1}"#, "[1e-324]", "[-1e-324]", "[4.9406564584124654e-324]", "[2.4703282292062327e-324]",
            "[2.4703282292062328e-324]", "[1.7976931348623158e308]", "[9223372036854775807]", "[18446744073709551616]",
            "[" + String(repeating: "9", count: 10_000) + "]", "[0." + String(repeating: "0", count: 10_000) + "1]",
        ].map { Self.bytes($0) }
        cases += [
            [0xEF, 0xBB, 0xBF] + Self.bytes("{}"), Self.inString([0xE0, 0xFF]), Self.inString([0xFC, 0x83, 0xBF, 0xBF, 0xBF, 0xBF]),
            Self.inString([0xFC, 0x80, 0x80, 0x80, 0x80, 0x80]), Self.inString([0xF4, 0xBF, 0xBF, 0xBF]), Self.inString([0xED, 0xA0, 0x80]),
            Self.inString([0x81]), Self.inString([0xE9]), Self.inString([0xFF]), [0xFF, 0xFE] + Self.bytes("[\0\"\0\u{E9}\0\"\0]\0"),
            Self.bytes("\0[\0\"\0\u{E9}\0\"\0]"), Self.bytes("[\0\"\0\u{E9}\0\"\0]\0"), [0x00], [0x80], [0xFF],
        ]
        for input in cases {
            if case .failure(let error) = Self.parse(input) {
                #expect(error.code == .parseError, "\(input.prefix(40))")
            }
        }
        // Every prefix of a valid document, and every single-byte corruption of it, is answered without trapping.
        let document = Self.bytes(#"{"id":"k-3","method":"colorize","params":{"sketch":{"frame":1,"encoding":"png"},"prompt":"\u00e9t\u00e9 \ud83c\udf1e","seed":-1.5e-3,"x":[true,false,null]}}"#)
        for n in 0...document.count {
            _ = Self.parse(Array(document.prefix(n)))
        }
        for position in document.indices {
            for replacement: UInt8 in [0x00, 0x22, 0x5C, 0x7B, 0x5D, 0x2C, 0x80, 0xC3, 0xED, 0xF4, 0xFF] {
                var corrupt = document
                corrupt[position] = replacement
                if case .failure(let error) = Self.parse(corrupt) { #expect(error.code == .parseError) }
            }
        }
    }

    // MARK: round trips

    @Test func serializedValuesParseBackUnderTheStrictRules() throws {
        let value: JSONValue = [
            "strings": ["", "quote \" backslash \\ slash /", "controls \u{0}\u{1}\u{8}\u{C}\n\r\t\u{1F}", "\u{7F}\u{A0}\u{2028}\u{FFFF}",
                        "\u{10000}\u{1F600}\u{10FFFF}", "caf\u{E9} \u{65}\u{301}"],
            "numbers": [0, -1, 1.5, -0.001, 1e-7, 123456789012345, 9_007_199_254_740_991, 1e300, -1e-300, .number(Double.leastNonzeroMagnitude),
                        .number(Double.greatestFiniteMagnitude)],
            "nested": [[[["a": [.null, true, false]]]]],
            "": .object([:]),
        ]
        #expect(try JSONValue.parse(value.serialized()) == value)
    }
}
