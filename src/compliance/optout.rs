//! What an inbound SMS asks for: the carrier keywords, and replies a reasonable person means
//! as "stop" (the FCC's 2024 revocation rule: consent may be revoked by any reasonable means).
//!
//! Keywords are whole messages, any case: STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL, END,
//! QUIT, REVOKE, OPTOUT, OPT OUT opt out; START, UNSTOP, YES opt back in; HELP, INFO ask for help.
//!
//! Phrases are looked for in each clause of a reply (clauses split at `, . ; ! ?`), after case,
//! accents and apostrophes are folded: see [`PHRASES`]. A clause that is a keyword with only
//! courtesy words around it ("stop please", "ALTO por favor") also opts out. A phrase preceded
//! in its clause by a negation (`dont`, `do not`, `not`, `never`, `no`, `nunca`) does not count:
//! "don't stop the reminders" keeps them coming. `*` at the end of a phrase word matches any
//! ending ("dejen de enviarme" matches `dej* de envi*`).

/// What a reply asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// A carrier keyword: the carrier itself already stops delivery.
    OptOutKeyword,
    /// A reply that means "stop" without being a keyword.
    OptOutPhrase,
    OptIn,
    Help,
    Other,
}

impl Intent {
    pub fn opts_out(self) -> bool {
        matches!(self, Self::OptOutKeyword | Self::OptOutPhrase)
    }
}

const OPT_OUT_KEYWORDS: &[&str] = &[
    "stop",
    "stopall",
    "stop all",
    "unsubscribe",
    "cancel",
    "end",
    "quit",
    "revoke",
    "optout",
    "opt out",
];
const OPT_IN_KEYWORDS: &[&str] = &["start", "unstop", "yes"];
const HELP_KEYWORDS: &[&str] = &["help", "info"];

/// Single words that, alone in a clause (with courtesy words), mean "stop" in Spanish.
const SPANISH_STOP_WORDS: &[&str] = &["alto", "parar", "para", "cancelar", "baja", "basta"];

const COURTESY: &[&str] = &[
    "please", "pls", "plz", "now", "thanks", "thank", "you", "thx", "ok", "okay", "por", "favor",
    "ya", "gracias", "now", "asap",
];

/// Phrases meaning "stop", English then Spanish.
pub const PHRASES: &[&str] = &[
    "stop text*",
    "stop messag*",
    "stop send*",
    "stop contact*",
    "stop email*",
    "stop call*",
    "stop the text*",
    "stop the messag*",
    "stop the reminder*",
    "stop these",
    "stop all",
    "stop reminder*",
    "remove me",
    "remove my number",
    "take me off",
    "take my number off",
    "unsubscribe",
    "unsubscribe me",
    "opt out",
    "opt me out",
    "optout",
    "no more messag*",
    "no more text*",
    "no more reminder*",
    "dont text me",
    "do not text me",
    "dont message me",
    "do not message me",
    "dont contact me",
    "do not contact me",
    "leave me alone",
    "wrong number",
    "no mas mensaj*",
    "no mas text*",
    "no mas recordatori*",
    "no me envi*",
    "no me mand*",
    "no me escrib*",
    "no me contact*",
    "dej* de envi*",
    "dej* de mand*",
    "dej* de escrib*",
    "dej* de contact*",
    "dej* de recibir",
    "dar* de baja",
    "dame de baja",
    "denme de baja",
    "deme de baja",
    "darme de baja",
    "cancelar suscripcion",
    "cancelar mensaj*",
    "quit* de la lista",
    "borr* mi numero",
    "elimin* mi numero",
    "numero equivocado",
];

const NEGATIONS: &[&[&str]] = &[
    &["dont"],
    &["do", "not"],
    &["not"],
    &["never"],
    &["no"],
    &["nunca"],
];

pub fn classify(body: &str) -> Intent {
    let whole = fold(body);
    let whole = whole.split_whitespace().collect::<Vec<_>>().join(" ");
    if OPT_OUT_KEYWORDS.contains(&whole.as_str()) {
        return Intent::OptOutKeyword;
    }
    if OPT_IN_KEYWORDS.contains(&whole.as_str()) {
        return Intent::OptIn;
    }
    if HELP_KEYWORDS.contains(&whole.as_str()) {
        return Intent::Help;
    }
    if means_stop(body) {
        Intent::OptOutPhrase
    } else {
        Intent::Other
    }
}

/// Whether a reply that is not a keyword means "stop".
pub fn means_stop(body: &str) -> bool {
    fold(body)
        .split([',', '.', ';', '!', '?', ':', '\n'])
        .any(clause_means_stop)
}

fn clause_means_stop(clause: &str) -> bool {
    let words: Vec<String> = clause
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let content: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !COURTESY.contains(w))
        .collect();
    let bare = content.join(" ");
    if !content.is_empty()
        && (OPT_OUT_KEYWORDS.contains(&bare.as_str())
            || SPANISH_STOP_WORDS.contains(&bare.as_str()))
    {
        return true;
    }
    PHRASES.iter().any(|phrase| {
        let pattern: Vec<&str> = phrase.split(' ').collect();
        (0..words.len()).any(|at| matches_at(&words, at, &pattern) && !negated(&words[..at]))
    })
}

fn matches_at(words: &[String], at: usize, pattern: &[&str]) -> bool {
    at + pattern.len() <= words.len()
        && pattern
            .iter()
            .zip(&words[at..])
            .all(|(p, w)| match p.strip_suffix('*') {
                Some(prefix) => w.starts_with(prefix),
                None => w == p,
            })
}

/// A negation among the three words before a phrase.
fn negated(before: &[String]) -> bool {
    let window = &before[before.len().saturating_sub(3)..];
    NEGATIONS.iter().any(|negation| {
        window
            .windows(negation.len())
            .any(|w| w.iter().zip(negation.iter()).all(|(a, b)| a == b))
    })
}

/// Lower case, Spanish accents off, apostrophes dropped (so "don't" and "dont" are one word).
fn fold(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\'' | '’' | '‘' | '`'))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'ä' => 'a',
            'é' | 'è' | 'ë' => 'e',
            'í' | 'ì' | 'ï' => 'i',
            'ó' | 'ò' | 'ö' => 'o',
            'ú' | 'ù' | 'ü' => 'u',
            '¡' | '¿' => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_carrier_keywords_are_recognised_whole_in_any_case() {
        for word in [
            "STOP",
            "stop",
            " Stop ",
            "STOPALL",
            "STOP ALL",
            "stop  all",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
            "OPT OUT",
        ] {
            assert_eq!(classify(word), Intent::OptOutKeyword, "{word:?}");
        }
        for word in ["START", "unstop", "Yes"] {
            assert_eq!(classify(word), Intent::OptIn, "{word:?}");
        }
        for word in ["HELP", "info"] {
            assert_eq!(classify(word), Intent::Help, "{word:?}");
        }
    }

    #[test]
    fn replies_a_reasonable_person_means_as_stop_opt_out() {
        for reply in [
            "stop texting me",
            "Please stop texting me!",
            "STOP please",
            "please remove me",
            "Remove me from this list",
            "no more messages",
            "No more texts, thanks",
            "opt me out please",
            "unsubscribe me",
            "Can you unsubscribe me?",
            "Don't text me again",
            "do not contact me",
            "leave me alone",
            "wrong number",
            "No, stop sending these",
            "Take me off your list",
            "Stop the reminders",
            "no más mensajes",
            "No mas mensajes por favor",
            "dejar de enviar",
            "Dejen de enviarme mensajes",
            "quiero darme de baja",
            "Denme de baja",
            "ALTO",
            "alto por favor",
            "no me envíen más mensajes",
            "Número equivocado",
            "cancelar suscripción",
        ] {
            assert_eq!(classify(reply), Intent::OptOutPhrase, "{reply:?}");
        }
    }

    #[test]
    fn replies_that_do_not_mean_stop_are_kept_as_messages() {
        for reply in [
            "don't stop the reminders",
            "Please don't stop texting me, they help",
            "do not remove me",
            "I'll stop by tomorrow at 3",
            "Can I reschedule to Friday?",
            "Yes please, see you then",
            "Thanks! What time is my appointment?",
            "my tooth stopped hurting",
            "is it the end of the month?",
            "no dejen de enviar recordatorios",
            "Gracias, nos vemos el lunes",
            "stopping by later",
            "",
        ] {
            assert!(!classify(reply).opts_out(), "{reply:?}");
        }
    }

    #[test]
    fn a_keyword_inside_a_sentence_is_not_the_keyword_itself() {
        assert_eq!(classify("stop please"), Intent::OptOutPhrase);
        assert_eq!(classify("yes please"), Intent::Other);
        assert_eq!(classify("help me book"), Intent::Other);
    }
}
