"""Real facts for the `qa` task: capitals of 135 countries and Puerto Rico with why each matters.

Each capital gets one of a few reusable reasons, chosen so that it is true for that city
(a capital that is not the most populous city is never called the most populous; ports only
where the capital is the country's main port; "planificada" only for purpose-built capitals).
Countries with disputed or split capitals (Países Bajos, Sudáfrica, Tanzania, Costa de Marfil,
Sri Lanka, ...) are left out on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    """Why a capital matters: the sentence fragment and the concept words it contributes."""

    text: str
    concepts: tuple[str, ...]


REASONS: dict[str, Reason] = {
    "centro": Reason("es el centro político, económico y cultural del país", ("político",)),
    "poblada": Reason("es la ciudad más poblada del país y la sede del gobierno", ("poblada",)),
    "poblada_puerto": Reason("es la ciudad más poblada del país y su principal puerto", ("poblada", "puerto")),
    "planificada": Reason("es una ciudad planificada, construida para ser la sede del gobierno", ("planificada",)),
    "sede": Reason("es la sede del gobierno, aunque no es la ciudad más poblada del país", ("gobierno",)),
    "patrimonio": Reason("es la sede del gobierno y su centro histórico es Patrimonio de la Humanidad", ("patrimonio",)),
    "financiero": Reason("es la sede del gobierno y el principal centro financiero del país", ("financiero",)),
    "europea": Reason("es la sede del gobierno y de varias instituciones de la Unión Europea", ("europea",)),
    "constitucional": Reason("es la capital constitucional y la sede del poder judicial", ("constitucional",)),
}


@dataclass(frozen=True)
class CapitalFact:
    """A country, how Spanish writes "de <country>", its capital and the key of its reason."""

    country: str
    capital: str
    reason: str
    of_country: str = ""

    @property
    def de(self) -> str:
        """The "de <country>" phrase, e.g. "de Francia", "del Reino Unido"."""
        return self.of_country or f"de {self.country}"


def _f(country: str, capital: str, reason: str, of_country: str = "") -> CapitalFact:
    return CapitalFact(country, capital, reason, of_country)


SPANISH_SPEAKING: tuple[CapitalFact, ...] = (
    _f("España", "Madrid", "centro"),
    _f("México", "Ciudad de México", "centro"),
    _f("Argentina", "Buenos Aires", "poblada_puerto"),
    _f("Colombia", "Bogotá", "centro"),
    _f("Perú", "Lima", "patrimonio"),
    _f("Venezuela", "Caracas", "financiero"),
    _f("Chile", "Santiago de Chile", "poblada"),
    _f("Ecuador", "Quito", "patrimonio"),
    _f("Guatemala", "Ciudad de Guatemala", "poblada"),
    _f("Cuba", "La Habana", "patrimonio"),
    _f("Bolivia", "Sucre", "constitucional"),
    _f("República Dominicana", "Santo Domingo", "patrimonio", "de la República Dominicana"),
    _f("Honduras", "Tegucigalpa", "poblada"),
    _f("Paraguay", "Asunción", "centro"),
    _f("El Salvador", "San Salvador", "centro"),
    _f("Nicaragua", "Managua", "poblada"),
    _f("Costa Rica", "San José", "centro"),
    _f("Panamá", "Ciudad de Panamá", "financiero"),
    _f("Uruguay", "Montevideo", "poblada_puerto"),
    _f("Guinea Ecuatorial", "Malabo", "sede"),
    _f("Puerto Rico", "San Juan", "poblada_puerto"),
)

EUROPE: tuple[CapitalFact, ...] = (
    _f("Francia", "París", "centro"),
    _f("Alemania", "Berlín", "poblada"),
    _f("Italia", "Roma", "patrimonio"),
    _f("Portugal", "Lisboa", "financiero"),
    _f("Reino Unido", "Londres", "centro", "del Reino Unido"),
    _f("Irlanda", "Dublín", "poblada_puerto"),
    _f("Bélgica", "Bruselas", "europea"),
    _f("Luxemburgo", "Luxemburgo", "europea"),
    _f("Suiza", "Berna", "sede"),
    _f("Austria", "Viena", "patrimonio"),
    _f("Polonia", "Varsovia", "financiero"),
    _f("Chequia", "Praga", "patrimonio"),
    _f("Hungría", "Budapest", "centro"),
    _f("Grecia", "Atenas", "centro"),
    _f("Suecia", "Estocolmo", "financiero"),
    _f("Noruega", "Oslo", "poblada"),
    _f("Dinamarca", "Copenhague", "poblada"),
    _f("Finlandia", "Helsinki", "poblada"),
    _f("Islandia", "Reikiavik", "poblada"),
    _f("Rusia", "Moscú", "poblada"),
    _f("Ucrania", "Kiev", "poblada"),
    _f("Rumanía", "Bucarest", "poblada"),
    _f("Bulgaria", "Sofía", "poblada"),
    _f("Serbia", "Belgrado", "poblada"),
    _f("Croacia", "Zagreb", "poblada"),
    _f("Eslovenia", "Liubliana", "poblada"),
    _f("Eslovaquia", "Bratislava", "poblada"),
    _f("Estonia", "Tallin", "patrimonio"),
    _f("Letonia", "Riga", "patrimonio"),
    _f("Lituania", "Vilna", "patrimonio"),
    _f("Bielorrusia", "Minsk", "poblada"),
    _f("Albania", "Tirana", "poblada"),
    _f("Macedonia del Norte", "Skopie", "poblada"),
    _f("Bosnia y Herzegovina", "Sarajevo", "poblada"),
    _f("Montenegro", "Podgorica", "poblada"),
    _f("Malta", "La Valeta", "patrimonio"),
    _f("Chipre", "Nicosia", "centro"),
    _f("Moldavia", "Chisináu", "poblada"),
    _f("Georgia", "Tiflis", "poblada"),
    _f("Armenia", "Ereván", "poblada"),
    _f("Azerbaiyán", "Bakú", "poblada_puerto"),
    _f("Turquía", "Ankara", "sede"),
    _f("Andorra", "Andorra la Vieja", "poblada"),
)

AMERICAS: tuple[CapitalFact, ...] = (
    _f("Estados Unidos", "Washington", "planificada"),
    _f("Canadá", "Ottawa", "sede"),
    _f("Brasil", "Brasilia", "planificada"),
    _f("Jamaica", "Kingston", "poblada_puerto"),
    _f("Haití", "Puerto Príncipe", "poblada_puerto"),
    _f("Belice", "Belmopán", "planificada"),
    _f("Guyana", "Georgetown", "poblada_puerto"),
    _f("Surinam", "Paramaribo", "poblada_puerto"),
    _f("Trinidad y Tobago", "Puerto España", "sede"),
    _f("Bahamas", "Nasáu", "poblada", "de las Bahamas"),
    _f("Barbados", "Bridgetown", "poblada_puerto"),
)

ASIA: tuple[CapitalFact, ...] = (
    _f("China", "Pekín", "sede"),
    _f("Japón", "Tokio", "financiero"),
    _f("Corea del Sur", "Seúl", "centro"),
    _f("Corea del Norte", "Pionyang", "poblada"),
    _f("India", "Nueva Delhi", "sede", "de la India"),
    _f("Pakistán", "Islamabad", "planificada"),
    _f("Bangladés", "Daca", "poblada"),
    _f("Tailandia", "Bangkok", "centro"),
    _f("Vietnam", "Hanói", "sede"),
    _f("Birmania", "Naipyidó", "planificada"),
    _f("Camboya", "Nom Pen", "poblada"),
    _f("Laos", "Vientián", "poblada"),
    _f("Nepal", "Katmandú", "poblada"),
    _f("Afganistán", "Kabul", "poblada"),
    _f("Irán", "Teherán", "poblada"),
    _f("Irak", "Bagdad", "poblada"),
    _f("Arabia Saudita", "Riad", "poblada"),
    _f("Jordania", "Amán", "poblada"),
    _f("Líbano", "Beirut", "poblada_puerto"),
    _f("Siria", "Damasco", "patrimonio"),
    _f("Kazajistán", "Astaná", "sede"),
    _f("Uzbekistán", "Taskent", "poblada"),
    _f("Mongolia", "Ulán Bator", "poblada"),
    _f("Emiratos Árabes Unidos", "Abu Dabi", "sede", "de los Emiratos Árabes Unidos"),
    _f("Catar", "Doha", "poblada"),
    _f("Omán", "Mascate", "poblada"),
    _f("Turkmenistán", "Asjabad", "poblada"),
    _f("Kirguistán", "Biskek", "poblada"),
    _f("Tayikistán", "Dusambé", "poblada"),
)

AFRICA: tuple[CapitalFact, ...] = (
    _f("Egipto", "El Cairo", "centro"),
    _f("Marruecos", "Rabat", "sede"),
    _f("Argelia", "Argel", "poblada_puerto"),
    _f("Túnez", "Túnez", "poblada"),
    _f("Libia", "Trípoli", "poblada_puerto"),
    _f("Nigeria", "Abuya", "planificada"),
    _f("Kenia", "Nairobi", "financiero"),
    _f("Etiopía", "Adís Abeba", "poblada"),
    _f("Senegal", "Dakar", "poblada_puerto"),
    _f("Angola", "Luanda", "poblada_puerto"),
    _f("Mozambique", "Maputo", "poblada_puerto"),
    _f("Uganda", "Kampala", "poblada"),
    _f("Ruanda", "Kigali", "poblada"),
    _f("Malí", "Bamako", "poblada"),
    _f("Níger", "Niamey", "poblada"),
    _f("Zimbabue", "Harare", "poblada"),
    _f("Zambia", "Lusaka", "poblada"),
    _f("Madagascar", "Antananarivo", "poblada"),
    _f("Mauritania", "Nuakchot", "poblada"),
    _f("Gabón", "Libreville", "poblada"),
    _f("Namibia", "Windhoek", "poblada"),
    _f("Botsuana", "Gaborone", "poblada"),
    _f("República Democrática del Congo", "Kinsasa", "poblada", "de la República Democrática del Congo"),
    _f("República del Congo", "Brazzaville", "poblada", "de la República del Congo"),
    _f("Guinea", "Conakri", "poblada_puerto"),
    _f("Burkina Faso", "Uagadugú", "poblada"),
    _f("Somalia", "Mogadiscio", "poblada_puerto"),
    _f("Eritrea", "Asmara", "patrimonio"),
)

OCEANIA: tuple[CapitalFact, ...] = (
    _f("Australia", "Canberra", "planificada"),
    _f("Nueva Zelanda", "Wellington", "sede"),
    _f("Fiyi", "Suva", "poblada_puerto"),
    _f("Papúa Nueva Guinea", "Port Moresby", "poblada"),
)

CAPITALS: tuple[CapitalFact, ...] = SPANISH_SPEAKING + EUROPE + AMERICAS + ASIA + AFRICA + OCEANIA
